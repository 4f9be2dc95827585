"""Append to and verify the audit trail. With ``portal.audit.sealer``, the only code that
writes ``audit_events``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from portal import access, pagination
from portal.access import Principal
from portal.audit.models import GENESIS_HASH, AuditedView, AuditEvent, AuditHead
from portal.db import utcnow
from portal.pagination import PageRequest

FIRST_PAGE = PageRequest()
CHAIN_VERSION = "v1"
DetailValue = str | int | float | bool | None


@dataclass(frozen=True)
class AuditContext:
    """Who is acting and from where; built once per request (or per CLI command).

    ``reads`` is the request's own record of the cases whose reading is already audited, so a
    page that calls several services writes one read row per case (``record_read``). Contexts
    that outlive a request (``SYSTEM``, the CLI) have none and audit every read.
    """

    actor_id: uuid.UUID | None = None
    actor_role: str | None = None
    client_ip: str | None = None
    request_id: str | None = None
    reads: set[uuid.UUID | None] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def for_request(cls, *, client_ip: str | None, request_id: str | None) -> AuditContext:
        """A context that audits each case's reading once for the whole request."""
        return cls(client_ip=client_ip, request_id=request_id, reads=set())

    def as_actor(self, actor_id: uuid.UUID, actor_role: str) -> AuditContext:
        """The same request, now attributed to a signed-in account."""
        return AuditContext(actor_id, actor_role, self.client_ip, self.request_id, self.reads)


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

    Only an insert: no lock is taken, so writers in any number of processes never wait on
    each other. The row is chained later by the sealer (``portal.audit.sealer``).
    """
    event = AuditEvent(
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
    )
    session.add(event)
    session.flush()
    return event


def record_read(
    *,
    session: Session,
    ctx: AuditContext,
    action: str,
    case_id: uuid.UUID | None = None,
    entity_type: str | None = None,
    entity_id: str | uuid.UUID | None = None,
    details: Mapping[str, DetailValue] | None = None,
) -> AuditEvent | None:
    """Audit a read once per request and case: the first read of a case in a request is
    recorded, later ones in the same request are covered by it. A read of no case in
    particular (a list beside the page's case) is covered by any earlier read."""
    if ctx.reads is not None:
        if case_id in ctx.reads or (case_id is None and ctx.reads):
            return None
        ctx.reads.add(case_id)
    return record(
        session=session,
        ctx=ctx,
        action=action,
        case_id=case_id,
        entity_type=entity_type,
        entity_id=entity_id,
        details=details,
    )


def record_first_view(
    *,
    session: Session,
    ctx: AuditContext,
    viewer_id: uuid.UUID,
    action: str,
    entity_type: str,
    entity_id: uuid.UUID,
    case_id: uuid.UUID,
    details: Mapping[str, DetailValue] | None = None,
) -> bool:
    """Audit ``viewer_id``'s first view of ``entity_id``; later views (on any replica) are
    covered by it. True when this call wrote the row. The caller commits."""
    values = {"viewer_id": viewer_id, "entity_id": entity_id, "seen_at": utcnow()}
    postgres = session.connection().dialect.name == "postgresql"
    insert = postgresql_insert(AuditedView) if postgres else sqlite_insert(AuditedView)
    claimed = session.execute(
        insert.values(**values).on_conflict_do_nothing().returning(col(AuditedView.viewer_id))
    ).first()
    if claimed is None:
        return False
    record(
        session=session,
        ctx=ctx,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        case_id=case_id,
        details=details,
    )
    return True


def forget_views(*, session: Session, older_than: timedelta) -> int:
    """Drop first-view marks older than ``older_than`` (no sign-in session outlives it)."""
    result = session.connection().execute(
        delete(AuditedView).where(col(AuditedView.seen_at) < utcnow() - older_than)
    )
    return int(getattr(result, "rowcount", 0) or 0)


NEWEST_FIRST = (col(AuditEvent.id),)


def list_events(
    *, session: Session, case_id: uuid.UUID | None = None, page: PageRequest = FIRST_PAGE
) -> tuple[list[AuditEvent], str | None]:
    """One page of events, newest first in append order (sealed or not), optionally for one
    case, and the cursor after it."""
    query = select(AuditEvent)
    if case_id is not None:
        query = query.where(AuditEvent.case_id == case_id)
    rows = session.exec(pagination.after(query, NEWEST_FIRST, page, descending=True)).all()
    return pagination.cut(rows, page, lambda event: (event.id or 0,))


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
    record_read(
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
    unsealed: int = 0
    oldest_unsealed_age: timedelta | None = None


def verify_chain(*, session: Session, batch: int = 1000) -> ChainReport:
    """Walk the sealed chain in order; name the first row that does not check out.

    Rows not yet sealed are not part of the chain: they are counted, with the oldest's age.
    """
    head = session.get(AuditHead, 1, populate_existing=True) or AuditHead()
    unsealed, oldest = session.exec(
        select(func.count(), func.min(AuditEvent.at)).where(col(AuditEvent.hash).is_(None))
    ).one()
    age = utcnow() - oldest if oldest is not None else None
    report = _walk_chain(session=session, head=head, batch=batch)
    return dataclasses.replace(report, unsealed=unsealed, oldest_unsealed_age=age)


def _walk_chain(*, session: Session, head: AuditHead, batch: int) -> ChainReport:
    expected_seq, prev_hash, checked, last_seq = 1, GENESIS_HASH, 0, 0
    while True:
        rows = session.exec(
            select(AuditEvent)
            .where(col(AuditEvent.seq) >= expected_seq)
            .order_by(col(AuditEvent.seq))
            .limit(batch)
            # Rows this session loaded before they were sealed elsewhere are read afresh.
            .execution_options(populate_existing=True)
        ).all()
        for event in rows:
            problem = _check_row(event, expected_seq, prev_hash)
            if problem:
                return ChainReport(False, checked, head.seq, head.hash, expected_seq, problem)
            prev_hash, last_seq, expected_seq = event.hash or "", expected_seq, expected_seq + 1
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
    if event.seq is None or event.seq != expected_seq:
        return f"row {expected_seq} is missing (next row found is {event.seq})"
    if event.prev_hash != prev_hash:
        return (
            f"row {event.seq} does not link to row {event.seq - 1} (a row was inserted or removed)"
        )
    if compute_hash(event) != event.hash:
        return f"row {event.seq} was altered: its contents no longer match its hash"
    return None
