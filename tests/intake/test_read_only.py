"""The ingest's reads run in read-only transactions: on SQLite they wait for no writer."""

from __future__ import annotations

import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session

from portal.access import Principal
from portal.accounts.models import Role
from portal.app import create_app
from portal.db import begin_read_only, create_db_engine
from portal.intake import service as intake_service
from storage.embedded import EmbeddedS3
from tests.fixtures.app import Accounts, make_settings, open_case


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


@pytest.fixture
def on_sqlite(
    tmp_path: Path, sqlite_template: Path, seaweed: EmbeddedS3
) -> Iterator[tuple[TestClient, FastAPI, Path]]:
    path = tmp_path / "portal.db"
    shutil.copy(sqlite_template, path)
    app = create_app(make_settings(tmp_path, f"sqlite:///{path}", seaweed))
    with TestClient(app, base_url="http://testserver") as client:
        yield client, app, path


def test_signed_in_requests_and_the_upload_check_wait_for_no_writer(
    on_sqlite: tuple[TestClient, FastAPI, Path],
):
    """Every request resolves its session and every upload checks its case: neither may queue
    behind another request's write (an ingest holding SQLite's one write lock)."""
    client, app, path = on_sqlite
    patient = Accounts(client, app).patient()
    case_id = uuid.UUID(open_case(client, patient)["id"])
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        assert client.get("/api/me", headers=patient.headers).status_code == 200
        with Session(app.state.engine, expire_on_commit=False) as session:
            principal = Principal(user_id=patient.user_id, role=Role.patient)
            case = intake_service.case_for_upload(
                session=session, principal=principal, case_id=case_id
            )
        assert case.id == case_id
        assert time.monotonic() - started < 5  # waiting for the writer would take 30 s
    finally:
        writer.rollback()
        writer.close()
