"""seal keys

Revision ID: 20261127_0002
Revises: 20261127_0001
Create Date: 2026-11-27 04:13:04.372182
"""
from alembic import op
import sqlalchemy as sa
import issuer.models.types


revision = '20261127_0002'
down_revision = '20261127_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('seal_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kid', sa.String(length=80), nullable=False),
    sa.Column('manufacturer_id', sa.Integer(), nullable=False),
    sa.Column('algorithm', sa.String(length=40), nullable=False),
    sa.Column('certificate_pem', sa.Text(), nullable=False),
    sa.Column('chain_pem', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('key_file', sa.String(length=200), nullable=False),
    sa.Column('not_before', issuer.models.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('not_after', issuer.models.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('created_at', issuer.models.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('retired_at', issuer.models.types.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['manufacturer_id'], ['manufacturers.id'], name=op.f('fk_seal_keys_manufacturer_id_manufacturers'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seal_keys')),
    sa.UniqueConstraint('kid', name=op.f('uq_seal_keys_kid'))
    )
    with op.batch_alter_table('seal_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seal_keys_manufacturer_id'), ['manufacturer_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('seal_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_seal_keys_manufacturer_id'))

    op.drop_table('seal_keys')
