"""Append audit events from several threads on PostgreSQL, before and after sealing moved off
the hot path; then the sealer's rate.

``before`` is the protocol every writer followed until now, reproduced here on today's
schema: lock the one ``audit_head`` row (``SELECT … FOR UPDATE``) until commit, chain the
row, move the head. ``after`` is ``portal.audit.service.record``: an insert, nothing locked.
Each event is its own transaction, as one audited request is. Run with
``python -m bench.audit_append [--events 10000] [--threads 4]`` (starts its own PostgreSQL).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlmodel import Session, select

from portal import migrate
from portal.audit import sealer
from portal.audit import service as audit_service
from portal.audit.models import AuditEvent, AuditHead
from portal.audit.service import AuditContext, canonical_details, compute_hash
from portal.db import create_db_engine, utcnow
from tests.services import PostgresServer, postgres_server

CTX = AuditContext(actor_role="system", client_ip="127.0.0.1", request_id="bench")
Append = Callable[[Session, int], None]


def append_locking_the_head(session: Session, i: int) -> None:
    """The former ``record``: one chain head, locked by every writer until it commits."""
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
    event = AuditEvent(
        seq=head.seq + 1,
        at=utcnow(),
        actor_role=CTX.actor_role,
        action="bench.event",
        outcome="success",
        client_ip=CTX.client_ip,
        request_id=CTX.request_id,
        details=canonical_details({"i": i}),
        prev_hash=head.hash,
    )
    event.hash = compute_hash(event)
    head.seq, head.hash = event.seq or 0, event.hash
    session.add_all([event, head])
    session.flush()


def append_only(session: Session, i: int) -> None:
    audit_service.record(session=session, ctx=CTX, action="bench.event", details={"i": i})


def fresh_database(server: PostgresServer, name: str) -> str:
    admin = sa.create_engine(server.admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    engine = create_db_engine(server.url(name))
    migrate.upgrade(engine)
    engine.dispose()
    return server.url(name)


def run_writers(url: str, append: Append, *, events: int, threads: int) -> float:
    """Seconds for ``threads`` writers, each with its own engine, to commit ``events``."""
    engines = [create_db_engine(url) for _ in range(threads)]
    start = threading.Barrier(threads + 1)

    def writer(index: int) -> None:
        start.wait()
        for i in range(index, events, threads):
            with Session(engines[index]) as session:
                append(session, i)
                session.commit()

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    for engine in engines:
        engine.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    with postgres_server() as server:
        before_url = fresh_database(server, "bench_before")
        before = run_writers(
            before_url, append_locking_the_head, events=args.events, threads=args.threads
        )
        after_url = fresh_database(server, "bench_after")
        after = run_writers(after_url, append_only, events=args.events, threads=args.threads)
        engine = create_db_engine(after_url)
        began = time.perf_counter()
        report = sealer.seal(engine=engine)
        sealing = time.perf_counter() - began
        with Session(engine) as session:
            chain = audit_service.verify_chain(session=session)
        engine.dispose()
    assert report.sealed == args.events and chain.ok and chain.unsealed == 0
    print(f"{args.events} audit events from {args.threads} threads, one per transaction:")
    print(f"  {'':28} {'seconds':>8} {'events/s':>9}")
    for label, seconds in (("before (head locked)", before), ("after (append only)", after)):
        print(f"  {label:28} {seconds:8.2f} {args.events / seconds:9.0f}")
    print(f"  {'sealer (chains them)':28} {sealing:8.2f} {args.events / sealing:9.0f}")


if __name__ == "__main__":
    main()
