"""A tus upload whose last chunk was recorded before completion became a job (every byte
there, no job) gets its completion job from housekeeping, once, and the job finishes it.

The state is the one the old ``tus.append`` committed before it ingested: every chunk stored
and recorded, the offset at the length, still ``receiving``. It is written here with the same
services ``append`` uses. A kill during the job itself is tests/crash/test_kill.py's and
tests/portal/test_upload_jobs.py's.
"""

from __future__ import annotations

import base64
import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from portal import housekeeping
from portal.intake.models import TusChunk, TusUpload
from portal.intake.upload_jobs import HANDLERS
from portal.jobs import service as jobs
from portal.objects import service as objects_service
from portal.settings import Settings
from tests.fixtures.app import Accounts, file_objects, open_case, text_share_key
from tests.portal import samples

pytestmark = pytest.mark.seaweedfs
TUS = {"Tus-Resumable": "1.0.0"}


def stalled_upload(client: TestClient, app: FastAPI, patient, data: bytes) -> tuple[str, str]:
    """Created through the API; its bytes recorded as ``tus.append`` records them, no ingest."""
    case_id = open_case(client, patient)["id"]
    metadata = ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in {"case_id": case_id, "filename": "ct.dcm"}.items()
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
    location = created.headers["location"]
    upload_id = uuid.UUID(location.rsplit("/", 1)[1])
    vault = app.state.vault
    with Session(app.state.engine) as session:
        upload = session.get(TusUpload, upload_id)
        assert upload is not None
        wrapped = objects_service.case_key(session=session, vault=vault, case_id=upload.case_id)
        stored = vault.put(case_id=case_id, wrapped_key=wrapped, source=data)
        row = objects_service.record(session=session, case_id=upload.case_id, stored=stored)
        session.add(
            TusChunk(upload_id=upload_id, stored_object_id=row.id, offset=0, length=stored.size)
        )
        upload.offset = stored.size
        session.add(upload)
        session.commit()
    return case_id, location


def run_housekeeping(app: FastAPI, settings: Settings) -> housekeeping.HousekeepingReport:
    return housekeeping.run_once(
        engine=app.state.engine, vault=app.state.vault, settings=settings, mail=False
    )


def run_jobs(app: FastAPI, settings: Settings) -> int:
    return jobs.run_pending(
        engine=app.state.engine, vault=app.state.vault, settings=settings, handlers=HANDLERS
    )


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.jobs_enabled = False  # the test runs the jobs itself
    return settings


def test_housekeeping_hands_an_upload_whose_ingest_was_cut_short_to_its_job(
    app: FastAPI, client: TestClient, accounts: Accounts, settings: Settings
):
    patient = accounts.patient()
    data = samples.ct_series(1)[0]
    case_id, location = stalled_upload(client, app, patient, data)
    # What a tus client sees after the crash: all bytes are there, so it sends nothing more.
    head = client.head(location, headers={**patient.headers, **TUS})
    assert head.headers["upload-offset"] == str(len(data))

    assert client.get(location, headers=patient.headers).json()["status"] == "receiving"
    assert run_housekeeping(app, settings).finished_uploads == 1
    assert client.get(location, headers=patient.headers).json()["status"] == "assembling"
    assert run_housekeeping(app, settings).finished_uploads == 0  # one job, asked for once
    assert run_jobs(app, settings) == 1
    status = client.get(location, headers=patient.headers).json()
    assert status["status"] == "complete"
    assert status["result"]["accepted"][0]["filename"] == "ct.dcm"
    files = client.get(f"/api/cases/{case_id}/files", headers=patient.headers).json()["items"]
    assert [(f["filename"], f["size"]) for f in files] == [("ct.dcm", len(data))]
    content = client.get(
        f"/api/cases/{case_id}/files/{files[0]['id']}/content", headers=patient.headers
    )
    assert content.content == data
    studies = client.get(f"/api/cases/{case_id}/studies", headers=patient.headers).json()
    assert studies["studies"][0]["series"][0]["instances"] == 1
    assert run_jobs(app, settings) == 0  # once only
    with Session(app.state.engine) as session:
        report = objects_service.scrub_storage(session=session, vault=app.state.vault)
        stored = [(o.object_key, o.size) for o in file_objects(session)]
        share = text_share_key(session, case_id)
    # The chunk is gone, the file stays (besides the case's text key share).
    assert [size for _, size in stored] == [len(data)]
    assert report.clean and sorted(report.verified) == sorted([stored[0][0], share])


def test_an_upload_into_a_case_that_moved_on_fails_with_a_reason(
    app: FastAPI, client: TestClient, accounts: Accounts, settings: Settings
):
    """The case stopped accepting files: the job ends failed at once, its bytes deleted."""
    patient = accounts.patient()
    case_id, location = stalled_upload(client, app, patient, samples.ct_series(1)[0])
    cancelled = client.post(f"/api/cases/{case_id}/cancel", headers=patient.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert run_housekeeping(app, settings).finished_uploads == 1
    assert run_jobs(app, settings) == 1
    status = client.get(location, headers=patient.headers).json()
    assert status["status"] == "failed" and "draft" in status["failure"]
    assert run_jobs(app, settings) == 0  # not retried
    with Session(app.state.engine) as session:
        assert session.exec(select(TusChunk)).all() == []
        assert file_objects(session) == []
