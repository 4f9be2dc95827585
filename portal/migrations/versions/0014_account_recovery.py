"""account recovery and settings: password-reset tokens and their throttle, the staff's
pending two-step sign-ins, the account's phone, and sealed outbox bodies (a reset link is a
secret until it is delivered)

Revision ID: 0014_account_recovery
Revises: 0013_periodic_turns
Create Date: 2026-12-04 15:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import portal.db

revision: str = '0014_account_recovery'
down_revision: str | None = '0013_periodic_turns'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'password_reset_tokens',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('user_id', sa.Uuid(), nullable=False),
        sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('created_at', portal.db.UTCDateTime(), nullable=False),
        sa.Column('expires_at', portal.db.UTCDateTime(), nullable=False),
        sa.Column('used_at', portal.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    with op.batch_alter_table('password_reset_tokens', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_password_reset_tokens_user_id'), ['user_id'], unique=False
        )
    op.create_table(
        'password_reset_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('email_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('client_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('at', portal.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('password_reset_requests', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_password_reset_requests_at'), ['at'], unique=False
        )
        batch_op.create_index(
            batch_op.f('ix_password_reset_requests_client_hash'), ['client_hash'], unique=False
        )
        batch_op.create_index(
            batch_op.f('ix_password_reset_requests_email_hash'), ['email_hash'], unique=False
        )
    op.create_table(
        'pending_sign_ins',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('user_id', sa.Uuid(), nullable=False),
        sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('created_at', portal.db.UTCDateTime(), nullable=False),
        sa.Column('expires_at', portal.db.UTCDateTime(), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('consumed_at', portal.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    with op.batch_alter_table('pending_sign_ins', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_pending_sign_ins_expires_at'), ['expires_at'], unique=False
        )
        batch_op.create_index(batch_op.f('ix_pending_sign_ins_user_id'), ['user_id'], unique=False)
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('body_sealed', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_column('body_sealed')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('phone')
    with op.batch_alter_table('pending_sign_ins', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pending_sign_ins_user_id'))
        batch_op.drop_index(batch_op.f('ix_pending_sign_ins_expires_at'))
    op.drop_table('pending_sign_ins')
    with op.batch_alter_table('password_reset_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_password_reset_requests_email_hash'))
        batch_op.drop_index(batch_op.f('ix_password_reset_requests_client_hash'))
        batch_op.drop_index(batch_op.f('ix_password_reset_requests_at'))
    op.drop_table('password_reset_requests')
    with op.batch_alter_table('password_reset_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_password_reset_tokens_user_id'))
    op.drop_table('password_reset_tokens')
