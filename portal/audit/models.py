"""The append-only, hash-chained audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Index
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Field, SQLModel

from portal.db import UTCDateTime

GENESIS_HASH = "0" * 64


class current_txid(FunctionElement[int]):
    """The inserting transaction's id on PostgreSQL (``txid_current()``); NULL on SQLite,
    whose single writer makes append order commit order anyway."""

    type = sa.BigInteger()
    inherit_cache = True
    name = "current_txid"


@compiles(current_txid)
def _current_txid_default(element: current_txid, compiler: Any, **kw: Any) -> str:
    return "NULL"


@compiles(current_txid, "postgresql")
def _current_txid_postgresql(element: current_txid, compiler: Any, **kw: Any) -> str:
    return "txid_current()"


AUDIT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""64-bit on PostgreSQL; SQLite's ``INTEGER PRIMARY KEY`` is already 64-bit (the rowid)."""


class AuditEvent(SQLModel, table=True):
    """One audited action. Identifiers and outcomes only — never patient data itself.

    Appended with ``id`` (append order) and no chain fields; the sealer later gives it
    ``seq``, ``prev_hash`` and ``hash`` (SHA-256 over ``prev_hash`` and the canonical form of
    this row's fields), so altering, deleting or inserting a sealed row breaks the chain from
    that row on.
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_case_id_id", "case_id", "id"),)  # a case's pages

    id: int | None = Field(default=None, sa_type=AUDIT_ID, primary_key=True)
    seq: int | None = Field(default=None, unique=True, index=True)
    at: datetime = Field(sa_type=UTCDateTime)
    actor_id: uuid.UUID | None = Field(default=None, index=True)
    actor_role: str | None = Field(default=None, max_length=16)
    action: str = Field(max_length=64, index=True)
    outcome: str = Field(max_length=16)
    entity_type: str | None = Field(default=None, max_length=32)
    entity_id: str | None = Field(default=None, max_length=64)
    case_id: uuid.UUID | None = Field(default=None, index=True)
    client_ip: str | None = Field(default=None, max_length=64)
    request_id: str | None = Field(default=None, max_length=64)
    details: str = Field(default="{}", max_length=4000)
    """Canonical JSON of non-identifying facts (reason codes, counts, sizes)."""
    txid: int | None = Field(
        default=None, sa_type=sa.BigInteger(), sa_column_kwargs={"default": current_txid()}
    )
    """The inserting transaction (PostgreSQL): the sealer waits until it cannot be in flight."""
    prev_hash: str | None = Field(default=None, max_length=64)
    hash: str | None = Field(default=None, max_length=64)


class AuditHead(SQLModel, table=True):
    """The chain's head, one row: written by the sealer only; anchors the last hash.

    Without it a deleted *last* row would leave a chain that still verifies.
    """

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default=GENESIS_HASH, max_length=64)


class AuditedView(SQLModel, table=True):
    """A sign-in session's first view of a series or record, already in the audit trail.

    Kept in the database, not in a process, so every replica knows it: the second view of
    the same thing, on any replica, writes no further row. Housekeeping forgets rows older
    than a sign-in session can live; forgetting can only add audit rows, never lose one.
    """

    __tablename__ = "audited_views"

    viewer_id: uuid.UUID = Field(primary_key=True)
    entity_id: uuid.UUID = Field(primary_key=True)
    seen_at: datetime = Field(sa_type=UTCDateTime, index=True)


class AuditEventPublic(SQLModel):
    id: int
    seq: int | None
    at: datetime
    actor_id: uuid.UUID | None
    actor_role: str | None
    action: str
    outcome: str
    entity_type: str | None
    entity_id: str | None
    case_id: uuid.UUID | None
    client_ip: str | None
    request_id: str | None
    details: dict[str, str | int | float | bool | None]
    hash: str | None
