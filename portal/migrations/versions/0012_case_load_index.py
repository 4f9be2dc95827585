"""case load index: specialists' active cases and deadline counts from the index alone

Revision ID: 0012_case_load_index
Revises: 0011_list_indexes
Create Date: 2026-12-03 17:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0012_case_load_index'
down_revision: str | None = '0011_list_indexes'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ['status', 'assigned_specialist_id', 'due_at', 'paused_at']


def upgrade() -> None:
    op.create_index('ix_cases_status_load', 'cases', COLUMNS, unique=False)


def downgrade() -> None:
    op.drop_index('ix_cases_status_load', table_name='cases')
