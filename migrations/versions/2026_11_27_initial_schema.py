"""initial schema

Revision ID: 20261127_0001
Revises: 
Create Date: 2026-11-27 04:07:39.405524
"""
from alembic import op
import sqlalchemy as sa
import issuer.models.types


revision = '20261127_0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('exporters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=False),
    sa.Column('uscc', sa.String(length=18), nullable=False),
    sa.Column('created_at', issuer.models.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exporters')),
    sa.UniqueConstraint('code', name=op.f('uq_exporters_code')),
    sa.UniqueConstraint('uscc', name=op.f('uq_exporters_uscc'))
    )
    op.create_table('manufacturers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=False),
    sa.Column('uscc', sa.String(length=18), nullable=False),
    sa.Column('created_at', issuer.models.types.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_manufacturers')),
    sa.UniqueConstraint('code', name=op.f('uq_manufacturers_code')),
    sa.UniqueConstraint('uscc', name=op.f('uq_manufacturers_uscc'))
    )
    op.create_table('exporter_blocks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('manufacturer_id', sa.Integer(), nullable=False),
    sa.Column('exporter_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('blocked_at', issuer.models.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('blocked_by', sa.String(length=254), nullable=False),
    sa.Column('lifted_at', issuer.models.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('lifted_by', sa.String(length=254), nullable=True),
    sa.Column('lift_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['exporter_id'], ['exporters.id'], name=op.f('fk_exporter_blocks_exporter_id_exporters'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['manufacturer_id'], ['manufacturers.id'], name=op.f('fk_exporter_blocks_manufacturer_id_manufacturers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exporter_blocks'))
    )
    with op.batch_alter_table('exporter_blocks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exporter_blocks_exporter_id'), ['exporter_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_exporter_blocks_manufacturer_id'), ['manufacturer_id'], unique=False)

    op.create_table('manufacturer_wmis',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('manufacturer_id', sa.Integer(), nullable=False),
    sa.Column('wmi', sa.String(length=3), nullable=False),
    sa.Column('plant_code', sa.String(length=3), nullable=False),
    sa.ForeignKeyConstraint(['manufacturer_id'], ['manufacturers.id'], name=op.f('fk_manufacturer_wmis_manufacturer_id_manufacturers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_manufacturer_wmis')),
    sa.UniqueConstraint('wmi', 'plant_code', name=op.f('uq_manufacturer_wmis_wmi_plant_code'))
    )
    with op.batch_alter_table('manufacturer_wmis', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_manufacturer_wmis_manufacturer_id'), ['manufacturer_id'], unique=False)

    op.create_table('outlets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('manufacturer_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', issuer.models.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('provider', sa.String(length=200), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('city', sa.String(length=100), nullable=False),
    sa.Column('phone', sa.String(length=50), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('brands', sa.Text(), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['manufacturer_id'], ['manufacturers.id'], name=op.f('fk_outlets_manufacturer_id_manufacturers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outlets')),
    sa.UniqueConstraint('manufacturer_id', 'code', name=op.f('uq_outlets_manufacturer_id_code'))
    )
    op.create_table('registered_vehicles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('manufacturer_id', sa.Integer(), nullable=False),
    sa.Column('vin', sa.String(length=17), nullable=False),
    sa.Column('brand', sa.String(length=100), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('production_date', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['manufacturer_id'], ['manufacturers.id'], name=op.f('fk_registered_vehicles_manufacturer_id_manufacturers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registered_vehicles')),
    sa.UniqueConstraint('manufacturer_id', 'vin', name=op.f('uq_registered_vehicles_manufacturer_id_vin'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=30), nullable=False),
    sa.Column('manufacturer_id', sa.Integer(), nullable=True),
    sa.Column('exporter_id', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('locale', sa.String(length=10), nullable=False),
    sa.Column('created_at', issuer.models.types.UtcDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('manufacturer_id IS NULL OR exporter_id IS NULL', name=op.f('ck_users_one_organisation')),
    sa.ForeignKeyConstraint(['exporter_id'], ['exporters.id'], name=op.f('fk_users_exporter_id_exporters'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['manufacturer_id'], ['manufacturers.id'], name=op.f('fk_users_manufacturer_id_manufacturers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_users_exporter_id'), ['exporter_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_users_manufacturer_id'), ['manufacturer_id'], unique=False)

    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('created_at', issuer.models.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', issuer.models.types.UtcDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', issuer.models.types.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('letter_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('manufacturer_id', sa.Integer(), nullable=False),
    sa.Column('exporter_id', sa.Integer(), nullable=False),
    sa.Column('submitted_by_id', sa.Integer(), nullable=True),
    sa.Column('application_date', sa.Date(), nullable=False),
    sa.Column('reference', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('warnings', sa.JSON(), nullable=False),
    sa.Column('assessed_on', sa.Date(), nullable=False),
    sa.Column('created_at', issuer.models.types.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['exporter_id'], ['exporters.id'], name=op.f('fk_letter_requests_exporter_id_exporters')),
    sa.ForeignKeyConstraint(['manufacturer_id'], ['manufacturers.id'], name=op.f('fk_letter_requests_manufacturer_id_manufacturers')),
    sa.ForeignKeyConstraint(['submitted_by_id'], ['users.id'], name=op.f('fk_letter_requests_submitted_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_letter_requests'))
    )
    with op.batch_alter_table('letter_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_letter_requests_exporter_id'), ['exporter_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_letter_requests_manufacturer_id'), ['manufacturer_id'], unique=False)

    op.create_table('outlet_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('outlet_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('recorded_at', issuer.models.types.UtcDateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=254), nullable=False),
    sa.Column('change', sa.String(length=20), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('provider', sa.String(length=200), nullable=False),
    sa.Column('address', sa.Text(), nullable=False),
    sa.Column('city', sa.String(length=100), nullable=False),
    sa.Column('phone', sa.String(length=50), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('brands', sa.Text(), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['outlet_id'], ['outlets.id'], name=op.f('fk_outlet_versions_outlet_id_outlets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outlet_versions')),
    sa.UniqueConstraint('outlet_id', 'version', name=op.f('uq_outlet_versions_outlet_id_version'))
    )
    op.create_table('request_vehicles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('vin', sa.String(length=64), nullable=False),
    sa.Column('brand', sa.String(length=100), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=False),
    sa.Column('registration_date', sa.Date(), nullable=False),
    sa.Column('export_transfer_date', sa.Date(), nullable=True),
    sa.Column('destination', sa.String(length=8), nullable=False),
    sa.Column('verdict', sa.String(length=20), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('letter_not_needed_from', sa.Date(), nullable=True),
    sa.Column('decision', sa.String(length=20), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['request_id'], ['letter_requests.id'], name=op.f('fk_request_vehicles_request_id_letter_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_request_vehicles')),
    sa.UniqueConstraint('request_id', 'position', name=op.f('uq_request_vehicles_request_id_position'))
    )


def downgrade() -> None:
    op.drop_table('request_vehicles')
    op.drop_table('outlet_versions')
    with op.batch_alter_table('letter_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_letter_requests_manufacturer_id'))
        batch_op.drop_index(batch_op.f('ix_letter_requests_exporter_id'))

    op.drop_table('letter_requests')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))

    op.drop_table('api_tokens')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_manufacturer_id'))
        batch_op.drop_index(batch_op.f('ix_users_exporter_id'))

    op.drop_table('users')
    op.drop_table('registered_vehicles')
    op.drop_table('outlets')
    with op.batch_alter_table('manufacturer_wmis', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_manufacturer_wmis_manufacturer_id'))

    op.drop_table('manufacturer_wmis')
    with op.batch_alter_table('exporter_blocks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exporter_blocks_manufacturer_id'))
        batch_op.drop_index(batch_op.f('ix_exporter_blocks_exporter_id'))

    op.drop_table('exporter_blocks')
    op.drop_table('manufacturers')
    op.drop_table('exporters')
