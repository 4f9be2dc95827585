"""Append to and verify the audit trail. The only code that writes ``audit_events``."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from portal import access, pagination
from portal.access import Principal
from portal.audit.models import GENESIS_HASH, AuditEvent, AuditHead
from portal.db import utcnow
from portal.pagination import PageRequest

FIRST_PAGE = PageRequest()
CHAIN_VERSION = "v1"
DetailValue = str | int | float | bool | None


@dataclass(frozen=True)
class AuditContext:
    """Who is acting and from where; built once per request (or per CLI command)."""

    actor_id: uuid.UUID | None = None
    actor_role: str | None = None
    client_ip: str | None = None
    request_id: str | None = None

    def as_actor(self, actor_id: uuid.UUID, actor_role: str) -> AuditContext:
        """The same request, now attributed to a signed-in account."""
        return AuditContext(actor_id, actor_role, self.client_ip, self.request_id)


SYSTEM = AuditContext(actor_role="system")


def canonical_details(details: Mapping[str, DetailValue] | None) -> str:
    return json.dumps(dict(details or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def compute_hash(event: AuditEvent) -> str:
    """SHA-256 over the previous hash and this row's canonical fields (see docs/audit.md)."""
    fields = [
        CHAIN_VERSION,
        event.seq,
        _timestamp(event.at),
        str(event.actor_id) if event.actor_id else None,
        event.actor_role,
        event.action,
        event.outcome,
        event.entity_type,
        event.entity_id,
        str(event.case_id) if event.case_id else None,
        event.client_ip,
        event.request_id,
        event.details,
        event.prev_hash,
    ]
    canonical = json.dumps(fields, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def record(
    *,
    session: Session,
    ctx: AuditContext,
    action: str,
    outcome: str = "success",
    entity_type: str | None = None,
    entity_id: str | uuid.UUID | None = None,
    case_id: uuid.UUID | None = None,
    details: Mapping[str, DetailValue] | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction; it lands when the caller commits.

    Locks the chain head (``FOR UPDATE``; on SQLite the transaction already holds the write
    lock), so concurrent writers in any number of processes extend one chain, never fork it.
    """
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS_HASH)
        session.add(head)
    event = AuditEvent(
        seq=head.seq + 1,
        at=utcnow(),
        actor_id=ctx.actor_id,
        actor_role=ctx.actor_role,
        action=action,
        outcome=outcome,
        entity_type=entity_type,
        entity_id=str(entity_id) if entity_id is not None else None,
        case_id=case_id,
        client_ip=ctx.client_ip,
        request_id=ctx.request_id,
        details=canonical_details(details),
        prev_hash=head.hash,
        hash="",
    )
    event.hash = compute_hash(event)
    head.seq, head.hash = event.seq, event.hash
    session.add(event)
    session.flush()
    return event


NEWEST_FIRST = (col(AuditEvent.seq),)


def list_events(
    *, session: Session, case_id: uuid.UUID | None = None, page: PageRequest = FIRST_PAGE
) -> tuple[list[AuditEvent], str | None]:
    """One page of events, newest first, optionally for one case, and the cursor after it."""
    query = select(AuditEvent)
    if case_id is not None:
        query = query.where(AuditEvent.case_id == case_id)
    rows = session.exec(pagination.after(query, NEWEST_FIRST, page, descending=True)).all()
    return pagination.cut(rows, page, lambda event: (event.seq,))


def read_trail(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    case_id: uuid.UUID | None = None,
    page: PageRequest = FIRST_PAGE,
) -> tuple[list[AuditEvent], str | None]:
    """Coordinators and admins read the trail (newest first); the reading is recorded too."""
    access.require(principal, "audit.read")
    events, next_cursor = list_events(session=session, case_id=case_id, page=page)
    record(
        session=session,
        ctx=ctx,
        action="audit.read",
        case_id=case_id,
        details={"count": len(events)},
    )
    session.commit()
    return events, next_cursor


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None


def verify_chain(*, session: Session, batch: int = 1000) -> ChainReport:
    """Walk the whole chain in order; name the first row that does not check out."""
    head = session.get(AuditHead, 1) or AuditHead()
    expected_seq, prev_hash, checked, last_seq = 1, GENESIS_HASH, 0, 0
    while True:
        rows = session.exec(
            select(AuditEvent)
            .where(AuditEvent.seq >= expected_seq)
            .order_by(col(AuditEvent.seq))
            .limit(batch)
        ).all()
        for event in rows:
            problem = _check_row(event, expected_seq, prev_hash)
            if problem:
                return ChainReport(False, checked, head.seq, head.hash, expected_seq, problem)
            prev_hash, last_seq, expected_seq = event.hash, event.seq, expected_seq + 1
            checked += 1
        if len(rows) < batch:
            break
    if head.seq != last_seq or head.hash != prev_hash:
        return ChainReport(
            False,
            checked,
            head.seq,
            head.hash,
            last_seq + 1,
            f"the chain ends at row {last_seq} but its head records row {head.seq}: "
            "rows were deleted from the end or the head was altered",
        )
    return ChainReport(True, checked, head.seq, head.hash)


def _check_row(event: AuditEvent, expected_seq: int, prev_hash: str) -> str | None:
    if event.seq != expected_seq:
        return f"row {expected_seq} is missing (next row found is {event.seq})"
    if event.prev_hash != prev_hash:
        return (
            f"row {event.seq} does not link to row {event.seq - 1} (a row was inserted or removed)"
        )
    if compute_hash(event) != event.hash:
        return f"row {event.seq} was altered: its contents no longer match its hash"
    return None
