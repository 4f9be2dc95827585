"""Upgrading a database whose upload names are in clear: migration 0009_upload_jobs sets them
aside like 0006 did, the portal seals them at start-up, and an upload whose bytes all arrived
before the upgrade gets its completion job."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from portal import migrate
from portal.app import create_app
from portal.db import create_db_engine
from portal.intake.models import ArchiveReport, TusUpload, UploadStatus
from portal.jobs.models import Job
from portal.objects import texts
from portal.objects.models import PendingText
from storage.embedded import EmbeddedS3
from tests.fixtures.app import make_settings
from tests.portal.test_sealed_text_upgrade import empty_database, insert

__all__ = ["empty_database"]
NAME = "UPGRADE-Ivanova-CD.zip"
RESULT = json.dumps({"accepted": [], "rejected": [{"filename": NAME, "reason": "no"}]})
MISSING = json.dumps(["UPGRADE-PATH/IM0001"])


def test_upload_names_of_an_old_database_are_sealed_after_the_upgrade(
    empty_database: str, tmp_path: Path, seaweed: EmbeddedS3
):
    ids = {name: uuid.uuid4() for name in ("user", "case", "done", "stalled", "report")}
    engine = create_db_engine(empty_database)
    try:
        migrate.upgrade(engine, "0008")
        with engine.begin() as connection:
            insert(connection, "users", id=ids["user"], email="old@example.org", role="patient")
            insert(
                connection,
                "cases",
                id=ids["case"],
                patient_id=ids["user"],
                reference="SO-OLD002",
                status="draft",
                body_region="spine",
                priority="standard",
                subject="Old case",
            )
            for key, completed in (("done", True), ("stalled", False)):
                insert(
                    connection,
                    "tus_uploads",
                    id=ids[key],
                    case_id=ids["case"],
                    owner_id=ids["user"],
                    filename=NAME,
                    length=10,
                    offset=10,
                    completed_at=None if not completed else sa.func.now(),
                    result=RESULT if completed else None,
                )
            insert(
                connection,
                "archive_reports",
                id=ids["report"],
                case_id=ids["case"],
                archive_name=NAME,
                missing=MISSING,
            )
        migrate.upgrade(engine)
        with Session(engine) as session:
            assert len(session.exec(select(PendingText)).all()) == 5
    finally:
        engine.dispose()

    app = create_app(make_settings(tmp_path, empty_database, seaweed, jobs_enabled=False))
    with (
        TestClient(app),  # start-up seals what the migration set aside
        texts.bind_vault(Session(app.state.engine), app.state.vault) as session,
    ):
        assert session.exec(select(PendingText)).all() == []
        sealer = texts.for_case(session=session, case_id=ids["case"])
        done = session.get(TusUpload, ids["done"])
        stalled = session.get(TusUpload, ids["stalled"])
        report = session.get(ArchiveReport, ids["report"])
        assert done is not None and stalled is not None and report is not None
        assert sealer.open(done, "filename") == sealer.open(stalled, "filename") == NAME
        assert sealer.open(done, "result") == RESULT
        assert sealer.open(report, "archive_name") == NAME
        assert sealer.open(report, "missing") == MISSING
        assert (done.status, stalled.status) == (UploadStatus.complete, UploadStatus.assembling)
        assert [job.key for job in session.exec(select(Job)).all()] == [str(ids["stalled"])]
    with app.state.engine.connect() as connection:
        rows = [
            *connection.execute(sa.text("SELECT * FROM tus_uploads")).all(),
            *connection.execute(sa.text("SELECT * FROM archive_reports")).all(),
        ]
    dumped = repr(rows).encode() + b"".join(
        value for row in rows for value in row if isinstance(value, bytes)
    )
    assert b"UPGRADE" not in dumped
