"""Chain appended audit rows: give them ``seq``, ``prev_hash`` and ``hash`` in commit order.

Writers only insert (``service.record``); exactly one sealer at a time, cluster-wide, takes
the unsealed rows and extends the chain from ``audit_head``. See docs/audit.md ("Sealing")
for why the order is right on PostgreSQL, where rows can commit out of ``id`` order.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Text, cast, func, or_
from sqlalchemy.engine import Engine
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from portal import cluster
from portal.audit.models import GENESIS_HASH, AuditEvent, AuditHead
from portal.audit.service import compute_hash

SEALER_LOCK = "audit.sealer"
BATCH = 1000


@dataclass(frozen=True)
class SealReport:
    sealed: int
    """Rows chained by this call."""
    skipped: bool = False
    """Another process was sealing at the time; it will chain what this call did not."""


def seal(*, engine: Engine, batch: int = BATCH) -> SealReport:
    """Chain every settled row, ``batch`` rows per transaction; a no-op while another
    process is sealing."""
    sealed = 0
    while True:
        with Session(engine, expire_on_commit=False) as session:
            chained = seal_batch(session=session, limit=batch)
            session.commit()
        if chained is None:
            return SealReport(sealed=sealed, skipped=True)
        sealed += chained
        if chained < batch:
            return SealReport(sealed=sealed)


def seal_batch(*, session: Session, limit: int = BATCH) -> int | None:
    """Chain up to ``limit`` settled rows in the session's transaction (the caller commits).

    Returns how many, or None when another sealer holds the lock.
    """
    if not cluster.try_xact_lock(session.connection(), SEALER_LOCK):
        return None
    head = session.get(AuditHead, 1, with_for_update=True, populate_existing=True)
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS_HASH)
        session.add(head)
    rows = session.exec(
        select(AuditEvent)
        .where(col(AuditEvent.hash).is_(None), _settled(session))
        .order_by(col(AuditEvent.id))
        .limit(limit)
    ).all()
    for event in rows:
        event.seq, event.prev_hash = head.seq + 1, head.hash
        event.hash = compute_hash(event)
        head.seq, head.hash = event.seq, event.hash
        session.add(event)
    session.add(head)
    session.flush()
    return len(rows)


def _settled(session: Session) -> ColumnElement[bool]:
    """Rows whose inserting transaction cannot still be running.

    On PostgreSQL: inserted by a transaction older than the oldest one in flight in this
    statement's snapshot (``pg_snapshot_xmin``). Every transaction still running, and so every
    row that may yet commit, has a newer transaction id. On SQLite this transaction holds the
    single write lock, so every row it sees is committed and none is in flight.
    """
    if session.connection().dialect.name != "postgresql":
        return col(AuditEvent.id).is_not(None)
    oldest_running = cast(cast(func.pg_snapshot_xmin(func.pg_current_snapshot()), Text), BigInteger)
    # A row without a txid was not written by ``record`` (an import, a restore): it is visible,
    # so committed, and nothing orders it against rows still in flight.
    return or_(col(AuditEvent.txid).is_(None), col(AuditEvent.txid) < oldest_running)
