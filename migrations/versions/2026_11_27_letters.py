"""letters

Revision ID: 20261127_0003
Revises: 20261127_0002
Create Date: 2026-11-27 04:17:01.943097
"""
from alembic import op
import sqlalchemy as sa
import issuer.models.types


revision = '20261127_0003'
down_revision = '20261127_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('letter_sequences',
    sa.Column('manufacturer_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('last_serial', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['manufacturer_id'], ['manufacturers.id'], name=op.f('fk_letter_sequences_manufacturer_id_manufacturers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('manufacturer_id', 'year', name=op.f('pk_letter_sequences'))
    )
    op.create_table('letters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=48), nullable=False),
    sa.Column('verification_code', sa.String(length=24), nullable=False),
    sa.Column('manufacturer_id', sa.Integer(), nullable=False),
    sa.Column('exporter_id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=True),
    sa.Column('content', sa.JSON(), nullable=False),
    sa.Column('created_at', issuer.models.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    sa.Column('issued_at', issuer.models.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('pdf', sa.LargeBinary(), nullable=True),
    sa.Column('pdf_sha256', sa.String(length=64), nullable=True),
    sa.Column('page_count', sa.Integer(), nullable=True),
    sa.Column('seal_key_id', sa.Integer(), nullable=True),
    sa.Column('sealer', sa.String(length=40), nullable=True),
    sa.Column('revoked_at', issuer.models.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('revoked_by', sa.String(length=254), nullable=True),
    sa.Column('revocation_reason', sa.Text(), nullable=True),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.Column('superseded_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['exporter_id'], ['exporters.id'], name=op.f('fk_letters_exporter_id_exporters')),
    sa.ForeignKeyConstraint(['manufacturer_id'], ['manufacturers.id'], name=op.f('fk_letters_manufacturer_id_manufacturers')),
    sa.ForeignKeyConstraint(['request_id'], ['letter_requests.id'], name=op.f('fk_letters_request_id_letter_requests')),
    sa.ForeignKeyConstraint(['seal_key_id'], ['seal_keys.id'], name=op.f('fk_letters_seal_key_id_seal_keys')),
    sa.ForeignKeyConstraint(['superseded_by_id'], ['letters.id'], name=op.f('fk_letters_superseded_by_id_letters')),
    sa.ForeignKeyConstraint(['supersedes_id'], ['letters.id'], name=op.f('fk_letters_supersedes_id_letters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_letters')),
    sa.UniqueConstraint('number', name=op.f('uq_letters_number'))
    )
    with op.batch_alter_table('letters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_letters_exporter_id'), ['exporter_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_letters_manufacturer_id'), ['manufacturer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_letters_request_id'), ['request_id'], unique=False)

    op.create_table('covered_vins',
    sa.Column('vin', sa.String(length=17), nullable=False),
    sa.Column('letter_id', sa.Integer(), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['letter_id'], ['letters.id'], name=op.f('fk_covered_vins_letter_id_letters'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('vin', name=op.f('pk_covered_vins'))
    )
    with op.batch_alter_table('covered_vins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_covered_vins_letter_id'), ['letter_id'], unique=False)

    op.create_table('letter_outlets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('letter_id', sa.Integer(), nullable=False),
    sa.Column('outlet_version_id', sa.Integer(), nullable=False),
    sa.Column('destination', sa.String(length=2), nullable=False),
    sa.ForeignKeyConstraint(['letter_id'], ['letters.id'], name=op.f('fk_letter_outlets_letter_id_letters'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['outlet_version_id'], ['outlet_versions.id'], name=op.f('fk_letter_outlets_outlet_version_id_outlet_versions'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_letter_outlets')),
    sa.UniqueConstraint('letter_id', 'outlet_version_id', name=op.f('uq_letter_outlets_letter_id_outlet_version_id'))
    )
    with op.batch_alter_table('letter_outlets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_letter_outlets_letter_id'), ['letter_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_letter_outlets_outlet_version_id'), ['outlet_version_id'], unique=False)

    op.create_table('letter_vehicles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('letter_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('vin', sa.String(length=17), nullable=False),
    sa.Column('brand', sa.String(length=100), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('registration_date', sa.Date(), nullable=False),
    sa.Column('destination', sa.String(length=2), nullable=False),
    sa.ForeignKeyConstraint(['letter_id'], ['letters.id'], name=op.f('fk_letter_vehicles_letter_id_letters'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_letter_vehicles')),
    sa.UniqueConstraint('letter_id', 'vin', name=op.f('uq_letter_vehicles_letter_id_vin'))
    )
    with op.batch_alter_table('letter_vehicles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_letter_vehicles_vin'), ['vin'], unique=False)

    with op.batch_alter_table('letter_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('supersedes_number', sa.String(length=48), nullable=True))
        batch_op.add_column(sa.Column('decided_at', issuer.models.types.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('decided_by', sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column('decision_note', sa.Text(), nullable=True))

    with op.batch_alter_table('manufacturers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('letter_validity_days', sa.Integer(), nullable=True, server_default='180'))



def downgrade() -> None:
    with op.batch_alter_table('manufacturers', schema=None) as batch_op:
        batch_op.drop_column('letter_validity_days')

    with op.batch_alter_table('letter_requests', schema=None) as batch_op:
        batch_op.drop_column('decision_note')
        batch_op.drop_column('decided_by')
        batch_op.drop_column('decided_at')
        batch_op.drop_column('supersedes_number')

    with op.batch_alter_table('letter_vehicles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_letter_vehicles_vin'))

    op.drop_table('letter_vehicles')
    with op.batch_alter_table('letter_outlets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_letter_outlets_outlet_version_id'))
        batch_op.drop_index(batch_op.f('ix_letter_outlets_letter_id'))

    op.drop_table('letter_outlets')
    with op.batch_alter_table('covered_vins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_covered_vins_letter_id'))

    op.drop_table('covered_vins')
    with op.batch_alter_table('letters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_letters_request_id'))
        batch_op.drop_index(batch_op.f('ix_letters_manufacturer_id'))
        batch_op.drop_index(batch_op.f('ix_letters_exporter_id'))

    op.drop_table('letters')
    op.drop_table('letter_sequences')
