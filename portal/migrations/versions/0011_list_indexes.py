"""list indexes: keyset pages of cases, files, audit events and specialists; frames per series

Revision ID: 0011_list_indexes
Revises: 0010_audit_append
Create Date: 2026-12-03 13:45:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0011_list_indexes'
down_revision: str | None = '0010_audit_append'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES: list[tuple[str, str, list[str]]] = [
    ('cases', 'ix_cases_created_at_id', ['created_at', 'id']),
    ('cases', 'ix_cases_patient_created', ['patient_id', 'created_at', 'id']),
    ('cases', 'ix_cases_specialist_created', ['assigned_specialist_id', 'created_at', 'id']),
    ('cases', 'ix_cases_status_created', ['status', 'created_at', 'id']),
    ('case_files', 'ix_case_files_case_created', ['case_id', 'created_at', 'id']),
    ('dicom_instances', 'ix_dicom_instances_series_frames', ['series_id', 'number_of_frames']),
    ('audit_events', 'ix_audit_events_case_id_id', ['case_id', 'id']),
    ('users', 'ix_users_role_name', ['role', 'full_name', 'id']),
]


def upgrade() -> None:
    for table, name, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for table, name, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
