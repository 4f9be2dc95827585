"""upload jobs: a durable job table; upload completion state; upload names sealed

Completing a resumable upload (and importing its ZIP) becomes a job any replica may run
(docs/jobs.md): ``jobs`` holds the work, ``tus_uploads`` gains its status and progress, and
``case_files`` / ``archive_reports`` remember which upload part they came from so a job run
again finds what it already did.

The upload's file name and result, and an archive report's name and missing paths, become
sealed columns in the two steps 0006 introduced: here their clear values move into
``pending_texts`` and the clear columns go; the portal seals them at start-up.

Revision ID: 0009_upload_jobs
Revises: 0008
Create Date: 2026-12-03 13:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import portal.db

revision: str = '0009_upload_jobs'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEALED = {
    'tus_uploads': ('filename', 'result'),
    'archive_reports': ('archive_name', 'missing'),
}


def upgrade() -> None:
    op.create_table(
        'jobs',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('run_after', portal.db.UTCDateTime(), nullable=False),
        sa.Column('leased_until', portal.db.UTCDateTime(), nullable=True),
        sa.Column('created_at', portal.db.UTCDateTime(), nullable=False),
        sa.Column('finished_at', portal.db.UTCDateTime(), nullable=True),
        sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('kind', 'key'),
    )
    op.create_index('ix_jobs_status_run_after', 'jobs', ['status', 'run_after'], unique=False)

    op.add_column('tus_uploads', sa.Column('status', sa.String(length=16), nullable=False,
                                           server_default='receiving'))
    op.add_column('tus_uploads', sa.Column('entries_done', sa.Integer(), nullable=False,
                                           server_default='0'))
    op.add_column('tus_uploads', sa.Column('entries_total', sa.Integer(), nullable=True))
    op.add_column('tus_uploads', sa.Column(
        'failure', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
    op.execute("UPDATE tus_uploads SET status = 'complete' WHERE completed_at IS NOT NULL")

    op.add_column('case_files', sa.Column('upload_id', sa.Uuid(), nullable=True))
    op.add_column('case_files', sa.Column('upload_entry', sa.Integer(), nullable=True))
    op.create_index('ix_case_files_upload_entry', 'case_files', ['upload_id', 'upload_entry'],
                    unique=True)
    op.add_column('archive_reports', sa.Column('upload_id', sa.Uuid(), nullable=True))
    op.create_index('ix_archive_reports_upload_id', 'archive_reports', ['upload_id'],
                    unique=True)

    connection = op.get_bind()
    pending = sa.table(
        'pending_texts',
        sa.column('case_id', sa.Uuid()),
        sa.column('table_name', sa.String()),
        sa.column('column_name', sa.String()),
        sa.column('row_id', sa.String()),
        sa.column('value', sa.Text()),
    )
    for table, columns in SEALED.items():
        source = sa.table(table, sa.column('id', sa.Uuid()), sa.column('case_id', sa.Uuid()),
                          *(sa.column(c, sa.Text()) for c in columns))
        rows = connection.execute(sa.select(source)).fetchall()
        values = [
            {'case_id': row.case_id, 'table_name': table, 'column_name': column,
             'row_id': str(row.id), 'value': getattr(row, column)}
            for row in rows
            for column in columns
            if getattr(row, column) is not None
        ]
        if values:
            connection.execute(pending.insert(), values)
        for column in columns:
            op.add_column(table, sa.Column(f'{column}_sealed', sa.LargeBinary(), nullable=True))
            if connection.dialect.name == 'sqlite':
                op.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
            else:
                op.drop_column(table, column)


def downgrade() -> None:
    raise NotImplementedError(
        'sealed upload names cannot be turned back into clear columns by a migration: the keys '
        'are in the vault. Restore a backup taken before 0009 instead.'
    )
