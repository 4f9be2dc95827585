"""tus completion as a job: the last PATCH answers at once, the job ingests (a ZIP entry by
entry, with progress), a job killed mid-way finishes on the next claim without duplicates, and
upload names are sealed in the database."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from portal.cases.consent import CURRENT_VERSION
from portal.intake.models import CaseFile
from portal.intake.upload_jobs import HANDLERS
from portal.jobs import service as jobs
from portal.jobs.models import Job
from portal.objects import orphans
from portal.objects import service as objects_service
from portal.settings import Settings
from tests.fixtures.app import Accounts, open_case
from tests.fixtures.uploads import kill_worker_after
from tests.portal import samples

pytestmark = pytest.mark.seaweedfs
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = {**TUS, "Content-Type": "application/offset+octet-stream"}
ZIP_NAME = "Ivanova CD 2026.zip"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No workers in the app: each test runs the job itself, exactly as a worker would."""
    settings.jobs_enabled = False
    return settings


def create(client: TestClient, patient: Any, case_id: str, data: bytes, name: str) -> str:
    metadata = ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in {"case_id": case_id, "filename": name}.items()
    )
    created = client.post(
        "/api/uploads",
        headers={
            **patient.headers,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata,
        },
    )
    assert created.status_code == 201, created.text
    return str(created.headers["location"])


def patch(client: TestClient, patient: Any, location: str, data: bytes, start: int, end: int):
    sent = client.patch(
        location,
        content=data[start:end],
        headers={**patient.headers, **CHUNK, "Upload-Offset": str(start)},
    )
    assert sent.status_code == 204, sent.text
    return sent


def run_jobs(app: FastAPI, settings: Settings) -> int:
    return jobs.run_pending(
        engine=app.state.engine, vault=app.state.vault, settings=settings, handlers=HANDLERS
    )


@SQLITE
def test_last_patch_answers_at_once_and_the_status_walks_to_complete(
    app: FastAPI, client: TestClient, accounts: Accounts, settings: Settings
):
    patient = accounts.patient()
    case_id = open_case(client, patient)["id"]
    data = samples.ct_zip(40)  # 40 CT slices of 512 x 512: a 20 MB CD
    location = create(client, patient, case_id, data, ZIP_NAME)
    half = len(data) // 2
    patch(client, patient, location, data, 0, half)

    def status() -> dict[str, Any]:
        answer = client.get(location, headers=patient.headers)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    assert status()["status"] == "receiving" and status()["offset"] == half
    started = time.perf_counter()
    last = patch(client, patient, location, data, half, len(data))
    patch_seconds = time.perf_counter() - started
    assert last.headers["upload-offset"] == str(len(data))
    waiting = status()
    assert (waiting["status"], waiting["result"], waiting["entries_total"]) == (
        "assembling",
        None,
        None,
    )

    seen: list[tuple[str, int, int | None]] = []
    worker = threading.Thread(target=run_jobs, args=(app, settings))
    started = time.perf_counter()
    worker.start()
    while worker.is_alive():
        now = status()
        seen.append((now["status"], now["entries_done"], now["entries_total"]))
        time.sleep(0.05)
    worker.join()
    job_seconds = time.perf_counter() - started
    done = status()
    print(f"\nlast PATCH of a 20 MB ZIP: {patch_seconds:.3f} s; its job: {job_seconds:.2f} s")
    assert patch_seconds < 1.0 and patch_seconds < job_seconds
    assert done["status"] == "complete" and done["entries_done"] == done["entries_total"] == 40
    assert len(done["result"]["accepted"]) == 40 and done["result"]["archives"][0]["archive"] == (
        ZIP_NAME
    )
    progress = [entries for state, entries, total in seen if state == "assembling" and total]
    assert progress == sorted(progress) and any(0 < n < 40 for n in progress), seen
    other = accounts.patient()
    assert client.get(location, headers=other.headers).status_code == 404


@SQLITE
def test_a_zip_sent_whole_at_creation_is_imported_by_its_job(
    app: FastAPI, client: TestClient, accounts: Accounts, settings: Settings
):
    """Creation-with-upload of a whole ZIP answers once its bytes are stored; the entries are
    the job's work (before, they were imported inside the creation request)."""
    patient = accounts.patient()
    case_id = open_case(client, patient)["id"]
    data = samples.ct_zip(3, size=64)
    metadata = ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in {"case_id": case_id, "filename": ZIP_NAME}.items()
    )
    created = client.post(
        "/api/uploads",
        content=data,
        headers={
            **patient.headers,
            **CHUNK,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata,
        },
    )
    assert created.status_code == 201, created.text
    assert created.headers["upload-offset"] == str(len(data))
    location = str(created.headers["location"])
    waiting = client.get(location, headers=patient.headers).json()
    assert (waiting["status"], waiting["result"]) == ("assembling", None)
    files = client.get(f"/api/cases/{case_id}/files", headers=patient.headers).json()
    assert files["items"] == []

    assert run_jobs(app, settings) == 1
    done = client.get(location, headers=patient.headers).json()
    assert done["status"] == "complete" and done["entries_done"] == done["entries_total"] == 3
    assert len(done["result"]["accepted"]) == 3
    assert done["result"]["archives"][0]["archive"] == ZIP_NAME
    with app.state.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM tus_chunks")).scalar() == 0


@SQLITE
def test_upload_names_are_sealed_in_the_database_and_clear_in_the_api(
    app: FastAPI, client: TestClient, accounts: Accounts, settings: Settings
):
    patient = accounts.patient()
    case_id = open_case(client, patient)["id"]
    data = samples.ct_zip(2, size=64)
    location = create(client, patient, case_id, data, ZIP_NAME)
    patch(client, patient, location, data, 0, len(data))
    assert run_jobs(app, settings) == 1
    answer = client.get(location, headers=patient.headers).json()
    assert answer["result"]["accepted"][0]["filename"].startswith(ZIP_NAME)
    studies = client.get(f"/api/cases/{case_id}/studies", headers=patient.headers).json()
    assert studies["archives"][0]["archive"] == ZIP_NAME
    with app.state.engine.connect() as connection:
        rows = [
            *connection.execute(sa.text("SELECT * FROM tus_uploads")).all(),
            *connection.execute(sa.text("SELECT * FROM archive_reports")).all(),
        ]
    dumped = repr(rows).encode() + b"".join(
        value for row in rows for value in row if isinstance(value, bytes)
    )
    assert rows and b"Ivanova" not in dumped and b"IM0000" not in dumped


@SQLITE
@pytest.mark.slow
def test_a_job_killed_mid_archive_finishes_on_the_next_claim_without_duplicates(
    app: FastAPI, client: TestClient, accounts: Accounts, settings: Settings
):
    """kill -9 of the worker process after some entries; the lease runs out; another claim
    finishes the import: every entry once, no stray objects."""
    patient = accounts.patient()
    case_id = open_case(client, patient)["id"]
    data = samples.ct_zip(40)
    location = create(client, patient, case_id, data, ZIP_NAME)
    patch(client, patient, location, data, 0, len(data))
    upload_id = uuid.UUID(location.rsplit("/", 1)[1])
    stored_before = kill_worker_after(app.state.engine, settings, upload_id, entries=10)
    assert 10 <= stored_before < 40
    assert run_jobs(app, settings) == 1
    done = client.get(location, headers=patient.headers).json()
    assert done["status"] == "complete" and len(done["result"]["accepted"]) == 40
    with Session(app.state.engine) as session:
        files = session.exec(select(CaseFile)).all()
        assert len(files) == 40 and len({f.sha256 for f in files}) == 40
        assert session.exec(select(Job)).one().attempts == 2
        orphans.remove_orphans(session=session, vault=app.state.vault, grace=timedelta(0))
        session.commit()
        report = objects_service.scrub_storage(session=session, vault=app.state.vault)
    assert report.clean


@SQLITE
def test_an_upload_being_assembled_cannot_be_cancelled_or_appended_to(
    app: FastAPI, client: TestClient, accounts: Accounts, settings: Settings
):
    patient = accounts.patient()
    case_id = open_case(client, patient)["id"]
    data = samples.pdf()
    location = create(client, patient, case_id, data, "report.pdf")
    patch(client, patient, location, data, 0, len(data))
    deleted = client.delete(location, headers={**patient.headers, **TUS})
    assert deleted.status_code == 409 and "processed" in deleted.json()["detail"]
    again = client.patch(
        location,
        content=b"x",
        headers={**patient.headers, **CHUNK, "Upload-Offset": str(len(data))},
    )
    assert again.status_code == 409
    assert run_jobs(app, settings) == 1
    assert client.get(location, headers=patient.headers).json()["status"] == "complete"
    files = client.get(f"/api/cases/{case_id}/files", headers=patient.headers).json()["items"]
    assert [f["filename"] for f in files] == ["report.pdf"]


@SQLITE
def test_a_case_is_not_submitted_while_an_upload_into_it_is_being_assembled(
    app: FastAPI, client: TestClient, accounts: Accounts, settings: Settings
):
    """Its job would find the case no longer accepting files, and the file would be lost."""
    patient = accounts.patient()
    case_id = open_case(client, patient)["id"]
    consent = client.post(
        f"/api/cases/{case_id}/consent",
        json={"accepted": True, "version": CURRENT_VERSION},
        headers=patient.headers,
    )
    assert consent.status_code < 300, consent.text
    first, second = samples.ct_series(2)
    location = create(client, patient, case_id, first, "first.dcm")
    patch(client, patient, location, first, 0, len(first))
    assert run_jobs(app, settings) == 1  # one file in the case: it could be submitted
    location = create(client, patient, case_id, second, "second.dcm")
    patch(client, patient, location, second, 0, len(second))
    refused = client.post(f"/api/cases/{case_id}/submit", headers=patient.headers)
    assert refused.status_code == 409 and "still being processed" in refused.json()["detail"]
    assert run_jobs(app, settings) == 1
    submitted = client.post(f"/api/cases/{case_id}/submit", headers=patient.headers)
    assert submitted.status_code == 200, submitted.text
    files = client.get(f"/api/cases/{case_id}/files", headers=patient.headers).json()["items"]
    assert sorted(f["filename"] for f in files) == ["first.dcm", "second.dcm"]


@SQLITE
def test_a_long_import_renews_its_lease_so_no_other_worker_takes_it(
    app: FastAPI, client: TestClient, accounts: Accounts, settings: Settings
):
    settings.jobs_lease_seconds = 0.8  # shorter than the import (1.5-3 s)
    patient = accounts.patient()
    case_id = open_case(client, patient)["id"]
    data = samples.ct_zip(40)
    location = create(client, patient, case_id, data, ZIP_NAME)
    patch(client, patient, location, data, 0, len(data))
    first = threading.Thread(target=run_jobs, args=(app, settings))
    first.start()
    while job_status(app) == "pending":  # the first worker claims it
        time.sleep(0.01)
    others = 0
    while first.is_alive():
        others += run_jobs(app, settings)  # a second worker, trying all along
        time.sleep(0.05)
    first.join()
    assert others == 0
    assert client.get(location, headers=patient.headers).json()["status"] == "complete"
    with Session(app.state.engine) as session:
        assert session.exec(select(Job)).one().attempts == 1


def job_status(app: FastAPI) -> str:
    with Session(app.state.engine) as session:
        return session.exec(select(Job.status)).one()
