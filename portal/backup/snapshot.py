"""What a backup needs to know about one consistent view of the database.

Read through SQLAlchemy from the same snapshot the dump is made of, so the object list and
the case keys are exactly those of the dumped rows, whatever the portal writes meanwhile.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import col, select

from portal.objects.models import CaseKey, StoredObject


@dataclass(frozen=True)
class CaseKeyRow:
    """A case id (as its key context spells it) and its wrapped data key."""

    case_id: str
    wrapped_key: bytes


@dataclass(frozen=True)
class Snapshot:
    """The schema revision, rows per table, case keys and stored objects of one snapshot."""

    schema_revision: str
    table_rows: dict[str, int]
    case_keys: list[CaseKeyRow]
    objects: list[tuple[str, int]]
    """``(object key, stored size)`` of every object a row vouches for."""


def read_snapshot(connection: Connection) -> Snapshot:
    """Read everything a backup records from ``connection``'s current transaction."""
    tables = sorted(sa.inspect(connection).get_table_names())
    rows = {
        name: int(
            connection.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar_one()
        )
        for name in tables
    }
    revision = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    return Snapshot(
        schema_revision=str(revision),
        table_rows=rows,
        case_keys=read_case_keys(connection),
        objects=[
            (str(key), int(size))
            for key, size in connection.execute(
                select(col(StoredObject.object_key), col(StoredObject.stored_size)).order_by(
                    col(StoredObject.object_key)
                )
            )
        ],
    )


def read_case_keys(connection: Connection) -> list[CaseKeyRow]:
    """Every wrapped case key, ordered by case."""
    result = connection.execute(
        select(col(CaseKey.case_id), col(CaseKey.wrapped_key)).order_by(col(CaseKey.case_id))
    )
    return [case_key_row(case_id, wrapped) for case_id, wrapped in result]


def case_key_row(case_id: uuid.UUID | str, wrapped: bytes) -> CaseKeyRow:
    """Normalise a case id to the form the vault binds keys to (``str(UUID)``)."""
    case_uuid = case_id if isinstance(case_id, uuid.UUID) else uuid.UUID(case_id)
    return CaseKeyRow(case_id=str(case_uuid), wrapped_key=bytes(wrapped))


def tables_in(connection: Connection) -> list[str]:
    """User tables and views in the database (any schema on PostgreSQL)."""
    if connection.dialect.name == "postgresql":
        found = connection.execute(
            sa.text(
                "SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_class c "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'"
            )
        )
        return sorted(str(name) for (name,) in found)
    inspector = sa.inspect(connection)
    return sorted([*inspector.get_table_names(), *inspector.get_view_names()])
