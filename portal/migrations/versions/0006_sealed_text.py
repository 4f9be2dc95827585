"""sealed text: free-text columns become ciphertext under each case's text key

Sealing needs the vault (key provider and bucket), which a migration does not have. So this
revision is the first of two steps, both automatic:

1. here, in one transaction: every clear value is moved into ``pending_texts``, the clear
   columns are dropped and the ``*_sealed`` columns added;
2. the portal seals what waits in ``pending_texts`` at start-up, or ``portal texts seal``
   (``portal.cases.legacy_text``), deleting each row as its value is sealed.

Between the two steps the old text is still readable in ``pending_texts`` (as it was before);
afterwards the table is empty. See docs/encryption.md, "Database columns".

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:40:00
"""

import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, clear columns) moved to ``pending_texts``, then replaced by ``<column>_sealed``.
SEALED = {
    'cases': ('clinical_question', 'history'),
    'case_events': ('note',),
    'case_questions': ('text', 'answer'),
    'opinions': ('content', 'canonical'),
    'opinion_addenda': ('text',),
    'case_files': ('filename',),
    'case_assignments': ('reason',),
}
BATCH = 500


def upgrade() -> None:
    pending = op.create_table(
        'pending_texts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Uuid(), nullable=False),
        sa.Column('table_name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('column_name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('row_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('pending_texts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pending_texts_case_id'), ['case_id'], unique=False)

    connection = op.get_bind()
    for table, columns in SEALED.items():
        for rows in _batches(connection.execute(_clear_rows(table, columns))):
            values = [
                {
                    'case_id': row.case_id,
                    'table_name': table,
                    'column_name': column,
                    'row_id': str(row.id),
                    'value': _text(getattr(row, column)),
                }
                for row in rows
                for column in columns
                if getattr(row, column) is not None
            ]
            if values:
                connection.execute(pending.insert(), values)

    # Plain ALTER TABLE, also on SQLite (3.35+ drops columns in place): a batch rebuild would
    # drop and re-create ``cases``, which every case table references.
    for table, columns in SEALED.items():
        for column in columns:
            op.add_column(table, sa.Column(f'{column}_sealed', sa.LargeBinary(), nullable=True))
            if connection.dialect.name == 'sqlite':
                op.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
            else:
                op.drop_column(table, column)

    with op.batch_alter_table('case_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('text_share_id', sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            'fk_case_keys_text_share_id', 'stored_objects', ['text_share_id'], ['id']
        )


def _clear_rows(table: str, columns: tuple[str, ...]) -> sa.Select[Any]:
    meta = sa.MetaData()
    types: dict[str, sa.types.TypeEngine[Any]] = {'content': sa.JSON()}
    target = sa.Table(
        table,
        meta,
        sa.Column('id', sa.Integer() if table == 'case_events' else sa.Uuid()),
        *(sa.Column(column, types.get(column, sa.Text())) for column in columns),
        *([] if table in ('cases', 'opinion_addenda') else [sa.Column('case_id', sa.Uuid())]),
        *([sa.Column('opinion_id', sa.Uuid())] if table == 'opinion_addenda' else []),
    )
    if table == 'cases':
        return sa.select(target.c.id, target.c.id.label('case_id'), *(target.c[c] for c in columns))
    if table != 'opinion_addenda':
        return sa.select(target.c.id, target.c.case_id, *(target.c[c] for c in columns))
    opinions = sa.Table('opinions', meta, sa.Column('id', sa.Uuid()), sa.Column('case_id', sa.Uuid()))
    return sa.select(target.c.id, opinions.c.case_id, target.c.text).join(
        opinions, opinions.c.id == target.c.opinion_id
    )


def _batches(result: sa.CursorResult[Any]) -> Iterator[Sequence[sa.Row[Any]]]:
    while rows := result.fetchmany(BATCH):
        yield rows


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def downgrade() -> None:
    raise NotImplementedError(
        'sealed text cannot be turned back into clear columns by a migration: the keys are '
        'in the vault. Restore a backup taken before 0006 instead.'
    )
