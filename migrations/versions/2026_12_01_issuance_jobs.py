"""issuance jobs: letters rendered and sealed by queue workers

Revision ID: 20261201_0008
Revises: 20261201_0007
Create Date: 2026-12-01 23:00:00
"""
from alembic import op
import sqlalchemy as sa
import issuer.models.types


revision = '20261201_0008'
down_revision = '20261201_0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('issuance_jobs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('letter_id', sa.Integer(), nullable=True),
    sa.Column('letter_number', sa.String(length=48), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=True),
    sa.Column('manufacturer_id', sa.Integer(), nullable=False),
    sa.Column('exporter_id', sa.Integer(), nullable=False),
    sa.Column('vehicle_count', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('origin_request_id', sa.String(length=128), nullable=True),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    sa.Column('created_at', issuer.models.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('enqueued_at', issuer.models.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('started_at', issuer.models.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', issuer.models.types.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['exporter_id'], ['exporters.id'], name=op.f('fk_issuance_jobs_exporter_id_exporters')),
    sa.ForeignKeyConstraint(['letter_id'], ['letters.id'], name=op.f('fk_issuance_jobs_letter_id_letters'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['manufacturer_id'], ['manufacturers.id'], name=op.f('fk_issuance_jobs_manufacturer_id_manufacturers')),
    sa.ForeignKeyConstraint(['request_id'], ['letter_requests.id'], name=op.f('fk_issuance_jobs_request_id_letter_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_issuance_jobs'))
    )
    with op.batch_alter_table('issuance_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_issuance_jobs_exporter_id'), ['exporter_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_issuance_jobs_letter_id'), ['letter_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_issuance_jobs_manufacturer_id'), ['manufacturer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_issuance_jobs_request_id'), ['request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_issuance_jobs_state'), ['state'], unique=False)


def downgrade() -> None:
    op.drop_table('issuance_jobs')
