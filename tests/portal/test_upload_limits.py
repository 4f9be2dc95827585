"""Uploads a hostile or broken client cannot abuse: stalls, caps, quotas, races, bad framing."""

from __future__ import annotations

import base64
import logging
import time
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from portal.intake.models import CaseFile, DicomStudy, TusChunk, TusUpload
from portal.settings import Settings
from storage.embedded import EmbeddedS3
from storage.vault import case_prefix
from tests.fixtures.app import Accounts, file_objects, make_settings, open_case, text_share_key
from tests.fixtures.live import LiveServer
from tests.fixtures.uploads import upload_outcome
from tests.portal import samples
from tests.portal.raw_http import (
    form_body,
    form_part,
    multipart_headers,
    open_request,
    read_response,
)
from tests.services import wait_for

TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = {"Content-Type": "application/offset+octet-stream"}
STALL_SECONDS = 2.0
QUOTA = 2 * 1024 * 1024


@pytest.fixture
def settings(tmp_path: Path, database_url: str, seaweed: EmbeddedS3) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        seaweed,
        upload_stall_seconds=STALL_SECONDS,
        uploads_per_account=2,
        tus_max_open_per_case=3,
        tus_max_open_per_account=4,
        case_quota_bytes=QUOTA,
        tus_max_lifetime_hours=1,
    )


def metadata(case_id: str, filename: str = "file.dcm") -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in (("case_id", case_id), ("filename", filename))
    )


def create(client: TestClient, who_headers: dict[str, str], case_id: str, length: int):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/uploads",
        headers={
            **who_headers,
            **TUS,
            "Upload-Length": str(length),
            "Upload-Metadata": metadata(case_id),
        },
    )


def nothing_stored(app: FastAPI, db: Session, case_id: str) -> bool:
    """No file, index row or object of the case but its text key share (made when it opened)."""
    db.expire_all()
    objects = [o.key for o in app.state.vault.list_objects(case_prefix(case_id))]
    share = text_share_key(db, case_id)
    empty = (
        db.exec(select(CaseFile)).all() == []
        and file_objects(db) == []
        and db.exec(select(DicomStudy)).all() == []
    )
    db.rollback()  # SQLite: the test's session must not hold the write lock
    return empty and objects == [share]


# -- tus: quota, caps, closed cases, lifetime -----------------------------------------------


def test_tus_reserves_declared_lengths_against_the_case_quota(
    client: TestClient, accounts: Accounts
):
    patient = accounts.patient()
    case = open_case(client, patient)
    assert create(client, patient.headers, case["id"], 800 * 1024).status_code == 201
    assert create(client, patient.headers, case["id"], 800 * 1024).status_code == 201
    over = create(client, patient.headers, case["id"], 800 * 1024)
    assert over.status_code == 413
    assert "left, counting unfinished uploads" in over.json()["detail"]
    # The multipart route counts the same reservations: 400 KiB are left, not 2 MiB.
    big = samples.noise_png(700)
    assert len(big) > 450 * 1024
    answer = client.post(
        f"/api/cases/{case['id']}/files",
        files=[("files", ("big.png", big, "image/png"))],
        headers=patient.headers,
    )
    assert answer.status_code == 200 and answer.json()["accepted"] == [], answer.text


def test_tus_caps_open_uploads_per_case_and_per_account(client: TestClient, accounts: Accounts):
    patient = accounts.patient()
    first, second = open_case(client, patient), open_case(client, patient)
    for _ in range(3):
        assert create(client, patient.headers, first["id"], 10).status_code == 201
    per_case = create(client, patient.headers, first["id"], 10)
    assert per_case.status_code == 409
    assert "This case already has 3 unfinished uploads" in per_case.json()["detail"]
    assert create(client, patient.headers, second["id"], 10).status_code == 201
    per_account = create(client, patient.headers, second["id"], 10)
    assert per_account.status_code == 409
    assert "You already have 4 unfinished uploads" in per_account.json()["detail"]


def test_tus_patch_to_a_cancelled_case_is_refused_and_stores_nothing(
    client: TestClient, accounts: Accounts, app: FastAPI, db: Session
):
    patient = accounts.patient()
    case = open_case(client, patient)
    data = samples.dicom("CT_small.dcm")
    created = create(client, patient.headers, case["id"], len(data))
    location = created.headers["location"]
    first = client.patch(
        location,
        content=data[:1000],
        headers={**patient.headers, **TUS, **OFFSET_STREAM, "Upload-Offset": "0"},
    )
    assert first.status_code == 204
    cancelled = client.post(f"/api/cases/{case['id']}/cancel", headers=patient.headers)
    assert cancelled.status_code == 200, cancelled.text
    refused = client.patch(
        location,
        content=data[1000:],
        headers={**patient.headers, **TUS, **OFFSET_STREAM, "Upload-Offset": "1000"},
    )
    assert refused.status_code == 409
    assert "Files can be added while the case is a draft" in refused.json()["detail"]
    db.expire_all()
    assert [c.length for c in db.exec(select(TusChunk)).all()] == [1000]
    assert db.exec(select(TusUpload)).one().offset == 1000


def test_tus_lifetime_is_capped_whatever_the_patches(
    client: TestClient, accounts: Accounts, db: Session
):
    patient = accounts.patient()
    case = open_case(client, patient)
    created = create(client, patient.headers, case["id"], 100)
    limit = db.exec(select(TusUpload)).one().created_at + timedelta(hours=1)
    db.rollback()  # SQLite: the test's session must not hold the write lock
    assert parsedate_to_datetime(created.headers["upload-expires"]) <= limit
    patched = client.patch(
        created.headers["location"],
        content=b"x" * 10,
        headers={**patient.headers, **TUS, **OFFSET_STREAM, "Upload-Offset": "0"},
    )
    assert patched.status_code == 204
    assert parsedate_to_datetime(patched.headers["upload-expires"]) <= limit


# -- multipart framing ------------------------------------------------------------------------


def test_multipart_boundary_over_256_characters_is_a_400(client: TestClient, accounts: Accounts):
    patient = accounts.patient()
    case = open_case(client, patient)
    boundary = "b" * 300
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a"\r\n\r\n'
        f"x\r\n--{boundary}--\r\n"
    )
    answer = client.post(
        f"/api/cases/{case['id']}/files",
        content=body.encode(),
        headers={**patient.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert answer.status_code == 400
    assert "boundary is not valid" in answer.json()["detail"]


def test_multipart_without_closing_boundary_stores_nothing(
    client: TestClient, accounts: Accounts, app: FastAPI, db: Session
):
    patient = accounts.patient()
    case = open_case(client, patient)
    body = form_body(
        ("ct.dcm", samples.dicom("CT_small.dcm")), ("r.pdf", samples.pdf()), closed=False
    )
    answer = client.post(
        f"/api/cases/{case['id']}/files",
        content=body,
        headers=multipart_headers(patient.token or ""),
    )
    assert answer.status_code == 400
    assert "closing multipart boundary" in answer.json()["detail"]
    assert nothing_stored(app, db, case["id"])
    # The same body, closed, is accepted: the refusal was about the framing only.
    closed = form_body(("ct.dcm", samples.dicom("CT_small.dcm")), ("r.pdf", samples.pdf()))
    answer = client.post(
        f"/api/cases/{case['id']}/files",
        content=closed,
        headers=multipart_headers(patient.token or ""),
    )
    assert answer.status_code == 200 and len(answer.json()["accepted"]) == 2


# -- stalls, caps, races and disconnects on a real server -------------------------------------


def test_stalled_multipart_upload_is_a_408_and_keeps_nothing(
    live: LiveServer, accounts: Accounts, client: TestClient, app: FastAPI, db: Session
):
    patient = accounts.patient()
    case = open_case(client, patient)
    done = form_part("ct.dcm", samples.dicom("CT_small.dcm")) + b"\r\n"
    unfinished = form_part("r.pdf", samples.pdf()[:500])
    sock = open_request(
        live.url,
        "POST",
        f"/api/cases/{case['id']}/files",
        multipart_headers(patient.token or ""),
        content_length=len(done) + 100_000,
        first_bytes=done + unfinished,
    )
    started = time.monotonic()
    with sock:
        status, _, body = read_response(sock, timeout=STALL_SECONDS + 10)
    assert status == 408 and "No data arrived for 2 seconds" in body["detail"]
    assert STALL_SECONDS <= time.monotonic() - started < STALL_SECONDS + 5
    assert nothing_stored(app, db, case["id"])


def test_stalled_tus_patch_is_a_408_and_the_offset_stays(
    live: LiveServer, accounts: Accounts, client: TestClient, db: Session
):
    patient = accounts.patient()
    case = open_case(client, patient)
    location = create(client, patient.headers, case["id"], 50_000).headers["location"]
    sock = open_request(
        live.url,
        "PATCH",
        location,
        {**patient.headers, **TUS, **OFFSET_STREAM, "Upload-Offset": "0"},
        content_length=50_000,
        first_bytes=b"x" * 100,
    )
    with sock:
        status, _, body = read_response(sock, timeout=STALL_SECONDS + 10)
    assert status == 408 and "No data arrived" in body["detail"]
    db.expire_all()
    assert db.exec(select(TusUpload)).one().offset == 0
    assert db.exec(select(TusChunk)).all() == [] and file_objects(db) == []


def test_uploads_per_account_are_capped_with_retry_after(
    live: LiveServer, accounts: Accounts, client: TestClient, app: FastAPI
):
    patient, other = accounts.patient(), accounts.patient()
    case, other_case = open_case(client, patient), open_case(client, other)
    path = f"/api/cases/{case['id']}/files"
    held = [
        open_request(
            live.url,
            "POST",
            path,
            multipart_headers(patient.token or ""),
            content_length=100_000,
            first_bytes=form_part("a.dcm", b"DICM"),
        )
        for _ in range(2)
    ]
    try:
        capacity = app.state.upload_capacity
        assert wait_for(lambda: capacity.in_flight(patient.user_id) == 2, timeout=5)
        third = httpx.post(
            f"{live.url}{path}",
            files=[("files", ("ct.dcm", samples.dicom("CT_small.dcm")))],
            headers=patient.headers,
            timeout=10,
        )
        assert third.status_code == 429
        assert third.headers["retry-after"] == "10"
        assert "You already have 2 uploads in progress" in third.json()["detail"]
        someone_else = httpx.post(
            f"{live.url}/api/cases/{other_case['id']}/files",
            files=[("files", ("ct.dcm", samples.dicom("CT_small.dcm")))],
            headers=other.headers,
            timeout=10,
        )
        assert someone_else.status_code == 200, someone_else.text
    finally:
        for sock in held:
            sock.close()


def test_a_second_patch_to_one_upload_is_a_409(
    live: LiveServer, accounts: Accounts, client: TestClient, db: Session
):
    patient = accounts.patient()
    case = open_case(client, patient)
    data = samples.dicom("CT_small.dcm")
    location = create(client, patient.headers, case["id"], len(data)).headers["location"]
    patch_headers = {**patient.headers, **TUS, **OFFSET_STREAM, "Upload-Offset": "0"}
    slow = open_request(
        live.url, "PATCH", location, patch_headers, content_length=len(data), first_bytes=data[:10]
    )
    with slow:
        assert wait_for(
            lambda: (
                httpx.head(f"{live.url}{location}", headers={**patient.headers, **TUS}).status_code
                == 200
            )
        )
        time.sleep(0.3)  # the slow PATCH is being received
        second = httpx.patch(f"{live.url}{location}", content=data, headers=patch_headers)
        assert second.status_code == 409
        assert "Another request is already sending data" in second.json()["detail"]
        slow.sendall(data[10:])
        status, _, _ = read_response(slow, timeout=20)
    assert status == 204
    upload_outcome(lambda: httpx.get(f"{live.url}{location}", headers=patient.headers))
    db.expire_all()
    assert db.exec(select(CaseFile)).one().size == len(data)


def test_patch_racing_termination_is_a_404_and_keeps_nothing(
    live: LiveServer, accounts: Accounts, client: TestClient, db: Session
):
    patient = accounts.patient()
    case = open_case(client, patient)
    location = create(client, patient.headers, case["id"], 50_000).headers["location"]
    patch_headers = {**patient.headers, **TUS, **OFFSET_STREAM, "Upload-Offset": "0"}
    slow = open_request(
        live.url, "PATCH", location, patch_headers, content_length=20_000, first_bytes=b"x" * 10
    )
    with slow:
        time.sleep(0.5)
        gone = httpx.delete(f"{live.url}{location}", headers={**patient.headers, **TUS})
        assert gone.status_code == 204
        slow.sendall(b"x" * 19_990)
        status, _, body = read_response(slow, timeout=20)
    assert status == 404 and body["detail"] == "Upload not found."
    db.expire_all()
    assert file_objects(db) == [] and db.exec(select(TusUpload)).all() == []


def test_client_that_disconnects_mid_upload_is_logged_at_info(
    live: LiveServer,
    accounts: Accounts,
    client: TestClient,
    app: FastAPI,
    db: Session,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.INFO)
    patient = accounts.patient()
    case = open_case(client, patient)
    done = form_part("ct.dcm", samples.dicom("CT_small.dcm")) + b"\r\n"
    sock = open_request(
        live.url,
        "POST",
        f"/api/cases/{case['id']}/files",
        multipart_headers(patient.token or ""),
        content_length=len(done) + 100_000,
        first_bytes=done + form_part("r.pdf", b"%PDF-1.7"),
    )
    time.sleep(0.5)
    sock.close()

    def gone_logged() -> bool:
        return any("client disconnected" in r.getMessage() for r in caplog.records)

    assert wait_for(gone_logged, timeout=10)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert all(r.exc_info is None for r in caplog.records if "disconnected" in r.getMessage())
    assert nothing_stored(app, db, case["id"])


def test_a_refused_creation_with_upload_leaves_no_reservation(
    client: TestClient, accounts: Accounts, db: Session
):
    patient = accounts.patient()
    case = open_case(client, patient)
    data = b"x" * (QUOTA // 2 + 1)
    wrong = base64.b64encode(b"\0" * 32).decode()
    for _ in range(3):  # each would reserve over half the quota if it stayed
        refused = client.post(
            "/api/uploads",
            content=data,
            headers={
                **patient.headers,
                **TUS,
                **OFFSET_STREAM,
                "Upload-Length": str(len(data)),
                "Upload-Metadata": metadata(case["id"]),
                "Upload-Checksum": f"sha256 {wrong}",
            },
        )
        assert refused.status_code == 460, refused.text
    assert db.exec(select(TusUpload)).all() == []


def test_case_cancelled_while_a_patch_streams_in_keeps_nothing_of_it(
    live: LiveServer, accounts: Accounts, client: TestClient, db: Session
):
    patient = accounts.patient()
    case = open_case(client, patient)
    location = create(client, patient.headers, case["id"], 50_000).headers["location"]
    patch_headers = {**patient.headers, **TUS, **OFFSET_STREAM, "Upload-Offset": "0"}
    slow = open_request(
        live.url, "PATCH", location, patch_headers, content_length=20_000, first_bytes=b"x" * 10
    )
    with slow:
        time.sleep(0.5)
        cancelled = httpx.post(f"{live.url}/api/cases/{case['id']}/cancel", headers=patient.headers)
        assert cancelled.status_code == 200, cancelled.text
        slow.sendall(b"x" * 19_990)
        status, _, body = read_response(slow, timeout=20)
    assert status == 409 and "Files can be added while" in body["detail"]
    db.expire_all()
    assert db.exec(select(TusUpload)).one().offset == 0
    assert db.exec(select(TusChunk)).all() == [] and file_objects(db) == []


# -- STOW-RS: an upload like the others -------------------------------------------------------


def _stow_part(data: bytes) -> bytes:
    return b"--stow-b\r\nContent-Type: application/dicom\r\n\r\n" + data


def _stow_headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=stow-b',
        "Accept": "application/dicom+json",
    }


def test_stalled_stow_request_is_a_408_and_keeps_nothing(
    live: LiveServer, accounts: Accounts, client: TestClient, app: FastAPI, db: Session
):
    patient = accounts.patient()
    case = open_case(client, patient)
    done = _stow_part(samples.dicom("CT_small.dcm")) + b"\r\n"
    sock = open_request(
        live.url,
        "POST",
        f"/api/cases/{case['id']}/dicomweb/studies",
        _stow_headers(patient.token or ""),
        content_length=len(done) + 100_000,
        first_bytes=done + _stow_part(samples.dicom("MR_small.dcm")[:400]),
    )
    with sock:
        status, _, body = read_response(sock, timeout=STALL_SECONDS + 10)
    assert status == 408 and "No data arrived for 2 seconds" in body["detail"]
    assert nothing_stored(app, db, case["id"])


def test_stow_requests_count_against_the_uploads_per_account(
    live: LiveServer, accounts: Accounts, client: TestClient, app: FastAPI
):
    patient = accounts.patient()
    case = open_case(client, patient)
    stow = f"/api/cases/{case['id']}/dicomweb/studies"
    held = [
        open_request(
            live.url,
            "POST",
            stow,
            _stow_headers(patient.token or ""),
            content_length=100_000,
            first_bytes=_stow_part(b"\0" * 128 + b"DICM"),
        )
        for _ in range(2)
    ]
    try:
        capacity = app.state.upload_capacity
        assert wait_for(lambda: capacity.in_flight(patient.user_id) == 2, timeout=5)
        third = httpx.post(
            f"{live.url}/api/cases/{case['id']}/files",
            files=[("files", ("ct.dcm", samples.dicom("CT_small.dcm")))],
            headers=patient.headers,
            timeout=10,
        )
        assert third.status_code == 429, third.text
    finally:
        for sock in held:
            sock.close()
