"""a user's language is unset until they choose one

Revision ID: 20261201_0006
Revises: 20261201_0005
Create Date: 2026-12-01 20:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '20261201_0006'
down_revision = '20261201_0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('locale', existing_type=sa.String(length=10), nullable=True)


def downgrade() -> None:
    op.execute("UPDATE users SET locale = 'zh' WHERE locale IS NULL")
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.alter_column('locale', existing_type=sa.String(length=10), nullable=False)
