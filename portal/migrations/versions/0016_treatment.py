"""treatment: the condition and treatment guide (conditions, options with indicative prices,
clinics and their offers) and the patients' treatment-plan requests

Revision ID: 0016_treatment
Revises: 0014_account_recovery
Create Date: 2026-12-04 15:11:14
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import portal.db

revision: str = '0016_treatment'
down_revision: str | None = '0014_account_recovery'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('treatment_clinics',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('slug', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('texts', sa.JSON(), nullable=False),
    sa.Column('country', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
    sa.Column('languages', sa.JSON(), nullable=False),
    sa.Column('contact', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('updated_at', portal.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slug')
    )
    op.create_table('treatment_conditions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('slug', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('texts', sa.JSON(), nullable=False),
    sa.Column('updated_at', portal.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slug')
    )
    op.create_table('treatment_options',
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('price_min', sa.Integer(), nullable=True),
    sa.Column('price_max', sa.Integer(), nullable=True),
    sa.Column('price_set_on', sa.Date(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('slug', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('condition_id', sa.Uuid(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('texts', sa.JSON(), nullable=False),
    sa.Column('updated_at', portal.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['condition_id'], ['treatment_conditions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('slug')
    )
    with op.batch_alter_table('treatment_options', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_treatment_options_condition_id'), ['condition_id'], unique=False)

    op.create_table('treatment_clinic_offers',
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('price_min', sa.Integer(), nullable=True),
    sa.Column('price_max', sa.Integer(), nullable=True),
    sa.Column('price_set_on', sa.Date(), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('clinic_id', sa.Uuid(), nullable=False),
    sa.Column('option_id', sa.Uuid(), nullable=False),
    sa.Column('updated_at', portal.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['treatment_clinics.id'], ),
    sa.ForeignKeyConstraint(['option_id'], ['treatment_options.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('clinic_id', 'option_id')
    )
    with op.batch_alter_table('treatment_clinic_offers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_treatment_clinic_offers_clinic_id'), ['clinic_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_treatment_clinic_offers_option_id'), ['option_id'], unique=False)

    op.create_table('treatment_requests',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('case_id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('clinic_id', sa.Uuid(), nullable=True),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('travel_from', sa.Date(), nullable=False),
    sa.Column('travel_to', sa.Date(), nullable=False),
    sa.Column('notes_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('answer_sealed', sa.LargeBinary(), nullable=True),
    sa.Column('answered_by', sa.Uuid(), nullable=True),
    sa.Column('answered_at', portal.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', portal.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', portal.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['answered_by'], ['users.id'], ),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ),
    sa.ForeignKeyConstraint(['clinic_id'], ['treatment_clinics.id'], ),
    sa.ForeignKeyConstraint(['patient_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('treatment_requests', schema=None) as batch_op:
        batch_op.create_index('ix_treatment_requests_case_created', ['case_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_treatment_requests_created_id', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_treatment_requests_status_created', ['status', 'created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('treatment_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_treatment_requests_status_created')
        batch_op.drop_index('ix_treatment_requests_created_id')
        batch_op.drop_index('ix_treatment_requests_case_created')

    op.drop_table('treatment_requests')
    with op.batch_alter_table('treatment_clinic_offers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_treatment_clinic_offers_option_id'))
        batch_op.drop_index(batch_op.f('ix_treatment_clinic_offers_clinic_id'))

    op.drop_table('treatment_clinic_offers')
    with op.batch_alter_table('treatment_options', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_treatment_options_condition_id'))

    op.drop_table('treatment_options')
    op.drop_table('treatment_conditions')
    op.drop_table('treatment_clinics')