"""manufacturer seal image

Revision ID: 20261127_0004
Revises: 20261127_0003
Create Date: 2026-11-27 05:02:01.563552
"""
from alembic import op
import sqlalchemy as sa
import issuer.models.types


revision = '20261127_0004'
down_revision = '20261127_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('manufacturers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seal_image', sa.LargeBinary(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('manufacturers', schema=None) as batch_op:
        batch_op.drop_column('seal_image')

