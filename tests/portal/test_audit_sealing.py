"""Appending without a global lock, sealing afterwards: concurrency, waits and the window."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from portal import admin_commands
from portal.audit import sealer
from portal.audit import service as audit_service
from portal.audit.models import AuditEvent
from portal.audit.service import AuditContext
from portal.db import create_db_engine
from portal.settings import Settings

CTX = AuditContext(actor_role="system", client_ip="127.0.0.1", request_id="sealing-test")
postgres_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


def append(engine: Engine, n: int) -> None:
    with Session(engine) as session:
        for i in range(n):
            audit_service.record(session=session, ctx=CTX, action="test.event", details={"i": i})
        session.commit()


def verify(engine: Engine) -> audit_service.ChainReport:
    with Session(engine) as session:
        return audit_service.verify_chain(session=session)


@postgres_only
def test_an_open_audit_write_does_not_hold_up_another(engine: Engine):
    """A transaction with an appended, uncommitted row open; another appends and commits."""
    with Session(engine) as holder:
        audit_service.record(session=holder, ctx=CTX, action="test.slow")
        with Session(engine) as other:
            other.connection().execute(sa.text("SET LOCAL lock_timeout = '2s'"))
            started = time.monotonic()
            audit_service.record(session=other, ctx=CTX, action="test.fast")
            other.commit()
            assert time.monotonic() - started < 2
        holder.commit()
    assert sealer.seal(engine=engine).sealed >= 2
    assert verify(engine).ok


def _replica(url: str, writer: int, rounds: int, committed: list[int]) -> None:
    """One replica: its own engine, transactions of 1-3 events, every fifth rolled back."""
    engine = create_db_engine(url)
    try:
        for n in range(rounds):
            with Session(engine) as session:
                size = 1 + (writer + n) % 3
                for i in range(size):
                    audit_service.record(
                        session=session,
                        ctx=CTX,
                        action="test.replica",
                        details={"w": writer, "i": i},
                    )
                    time.sleep(0.0005 * ((writer + i) % 2))
                if n % 5 == 4:
                    session.rollback()
                    continue
                session.commit()
                committed.append(size)
    finally:
        engine.dispose()


@postgres_only
def test_replicas_writing_concurrently_make_one_verifiable_chain(database_url: str, engine: Engine):
    committed: list[int] = []
    stop = threading.Event()
    sealed_during: list[int] = []

    def seal_in_a_loop() -> None:
        while not stop.is_set():
            sealed_during.append(sealer.seal(engine=engine, batch=50).sealed)

    sealers = [threading.Thread(target=seal_in_a_loop) for _ in range(2)]
    writers = [
        threading.Thread(target=_replica, args=(database_url, w, 100, committed)) for w in range(4)
    ]
    for thread in sealers + writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=120)
    stop.set()
    for thread in sealers:
        thread.join(timeout=60)
    sealer.seal(engine=engine)
    report = verify(engine)
    assert report.ok, report.problem
    assert report.unsealed == 0
    assert report.checked == report.head_seq == sum(committed)
    assert sum(sealed_during) > 0, "the sealer ran while replicas were writing"
    with Session(engine) as session:
        seqs = session.exec(select(AuditEvent.seq).order_by(col(AuditEvent.seq))).all()
    assert seqs == list(range(1, sum(committed) + 1))


def test_rows_wait_unsealed_until_the_sealer_chains_them(engine: Engine):
    append(engine, 3)
    before = verify(engine)
    assert before.ok and before.checked == 0
    assert before.unsealed == 3 and before.oldest_unsealed_age is not None
    assert sealer.seal(engine=engine).sealed == 3
    after = verify(engine)
    assert after.ok and after.checked == after.head_seq == 3 and after.unsealed == 0
    assert sealer.seal(engine=engine).sealed == 0


def test_a_second_sealer_skips_while_one_holds_the_lock(engine: Engine):
    append(engine, 2)
    with Session(engine) as first:
        assert sealer.seal_batch(session=first) == 2
        if engine.dialect.name == "postgresql":
            assert sealer.seal(engine=engine).skipped
        first.commit()
    assert verify(engine).checked == 2


def test_database_lets_only_sealing_change_a_row(engine: Engine):
    append(engine, 1)
    with engine.connect() as connection:
        for statement in (
            "UPDATE audit_events SET action = 'x', seq = 1, prev_hash = 'p', hash = 'h'",
            "DELETE FROM audit_events",
        ):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                connection.execute(sa.text(statement))
            connection.rollback()
    sealer.seal(engine=engine)
    with engine.connect() as connection, pytest.raises(sa.exc.DBAPIError, match="append-only"):
        connection.execute(sa.text("UPDATE audit_events SET hash = 'h'"))
    assert verify(engine).ok


def test_cli_verify_seals_first_unless_told_not_to(
    engine: Engine, database_url: str, tmp_path, capsys: pytest.CaptureFixture[str]
):
    settings = Settings(
        environment="test", data_dir=tmp_path, database_url=database_url, secret_key="x" * 43
    )
    append(engine, 2)
    assert admin_commands.verify_audit(settings, seal=False) == 0
    assert "2 row(s) not sealed yet" in capsys.readouterr().out
    assert admin_commands.verify_audit(settings) == 0
    out = capsys.readouterr().out
    assert "not sealed" not in out and "intact: 2 rows" in out
    with Session(engine) as session:
        assert session.exec(select(func.count()).where(col(AuditEvent.hash).is_(None))).one() == 0
