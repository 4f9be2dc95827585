"""The append-only, hash-chained audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from portal.db import UTCDateTime

GENESIS_HASH = "0" * 64


class AuditEvent(SQLModel, table=True):
    """One audited action. Identifiers and outcomes only — never patient data itself.

    ``hash`` is SHA-256 over ``prev_hash`` and the canonical form of this row's fields, so
    altering, deleting or inserting a row breaks the chain from that row on.
    """

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_case_seq", "case_id", "seq"),)  # a case's pages

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
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
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """The chain's head, one row: serialises writers and anchors the last hash.

    Without it a deleted *last* row would leave a chain that still verifies.
    """

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default=GENESIS_HASH, max_length=64)


class AuditEventPublic(SQLModel):
    seq: int
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
    hash: str
