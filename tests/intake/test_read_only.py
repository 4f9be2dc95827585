"""The ingest's reads run in read-only transactions: on SQLite they wait for no writer."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session

from portal.db import begin_read_only, create_db_engine


def test_a_read_only_transaction_does_not_wait_for_a_writer(tmp_path: Path):
    path = tmp_path / "portal.db"
    engine = create_db_engine(f"sqlite:///{path}")
    with Session(engine) as session:
        session.exec(text("CREATE TABLE t (x INTEGER)"))  # type: ignore[call-overload]
        session.exec(text("INSERT INTO t VALUES (1)"))  # type: ignore[call-overload]
        session.commit()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another connection holds the write lock
    writer.execute("INSERT INTO t VALUES (2)")
    try:
        with Session(engine) as session:
            started = time.monotonic()
            begin_read_only(session)
            seen = session.exec(text("SELECT count(*) FROM t")).one()  # type: ignore[call-overload]
            session.commit()
            assert seen == (1,)  # the committed snapshot, without the writer's row
            assert time.monotonic() - started < 1  # a writer's transaction would wait 30 s
    finally:
        writer.rollback()
        writer.close()
        engine.dispose()
