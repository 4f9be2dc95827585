"""periodic turns: heavy housekeeping (the orphan pass lists the whole bucket) once per its
own interval cluster-wide, not at every pass

Revision ID: 0013_periodic_turns
Revises: 0012_case_load_index
Create Date: 2026-12-03 20:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import portal.db

revision: str = '0013_periodic_turns'
down_revision: str | None = '0012_case_load_index'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'periodic_turns',
        sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('taken_at', portal.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('periodic_turns')
