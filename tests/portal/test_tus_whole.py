"""tus creation-with-upload carrying the whole file: ingested directly, nothing staged.

This is how the case page sends every file up to its chunk size (a DICOM slice, a PDF): one
request, one encrypted object, and nothing kept when the body stops short or is corrupted.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from portal.intake.models import CaseFile, TusChunk, TusUpload
from storage.embedded import EmbeddedS3
from tests.fixtures.app import Account, Accounts, file_objects, open_case, text_share_key
from tests.fixtures.live import LiveServer
from tests.portal import samples
from tests.portal.test_intake import bucket_keys
from tests.portal.test_tus import TUS, metadata
from tests.services import wait_for


def creation_headers(
    who: Account, case_id: str, filename: str, data: bytes, checksum: str | None = None
) -> dict[str, str]:
    headers = {
        **who.headers,
        **TUS,
        "Upload-Length": str(len(data)),
        "Upload-Metadata": metadata(case_id, filename),
        "Content-Type": "application/offset+octet-stream",
    }
    if checksum is not None:
        headers["Upload-Checksum"] = checksum
    return headers


def sha256_of(data: bytes) -> str:
    return "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.fixture
def counted_puts(app: FastAPI) -> list[str]:
    """The object keys the vault stores, in order (the vault itself still does the work)."""
    vault = app.state.vault
    keys: list[str] = []
    put: Callable[..., Any] = vault.put

    def counting_put(**kwargs: Any) -> Any:
        stored = put(**kwargs)
        keys.append(stored.object_key)
        return stored

    vault.put = counting_put
    return keys


def test_whole_file_at_creation_is_one_stored_object(
    client: TestClient,
    accounts: Accounts,
    db: Session,
    seaweed: EmbeddedS3,
    counted_puts: list[str],
):
    patient = accounts.patient()
    case = open_case(client, patient)
    data = samples.dicom("CT_small.dcm")
    created = client.post(
        "/api/uploads",
        content=data,
        headers=creation_headers(patient, case["id"], "ct.dcm", data, sha256_of(data)),
    )
    assert created.status_code == 201, created.text
    assert created.headers["upload-offset"] == str(len(data))
    status = client.get(created.headers["location"], headers=patient.headers).json()
    assert status["status"] == "complete"
    assert [item["kind"] for item in status["result"]["accepted"]] == ["dicom"]
    stored = db.exec(select(CaseFile)).one()
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    share = text_share_key(db, case["id"])  # put when the case was opened
    puts = [key for key in counted_puts if key != share]
    assert len(puts) == 1  # no chunk stored, read back and deleted on the way
    assert set(bucket_keys(seaweed, case["id"])) == {*puts, share}
    assert db.exec(select(TusChunk)).all() == []
    assert len(file_objects(db)) == 1
    db.commit()  # on SQLite a test's open transaction holds the write lock
    content = client.get(
        f"/api/cases/{case['id']}/files/{stored.id}/content", headers=patient.headers
    )
    assert content.content == data


def test_whole_file_with_a_wrong_checksum_is_460_and_keeps_nothing(
    client: TestClient, accounts: Accounts, db: Session, seaweed: EmbeddedS3
):
    patient = accounts.patient()
    case = open_case(client, patient)
    data = samples.pdf()
    created = client.post(
        "/api/uploads",
        content=data,
        headers=creation_headers(patient, case["id"], "report.pdf", data, sha256_of(b"other")),
    )
    assert created.status_code == 460
    # Its answer carried no address, so nobody could resume it: it holds no quota either.
    assert db.exec(select(TusUpload)).all() == []
    assert db.exec(select(CaseFile)).all() == []
    assert file_objects(db) == []
    assert bucket_keys(seaweed, case["id"]) == [text_share_key(db, case["id"])]


def test_a_refused_whole_file_is_answered_with_its_reason(
    client: TestClient, accounts: Accounts, db: Session, seaweed: EmbeddedS3
):
    patient = accounts.patient()
    case = open_case(client, patient)
    data = b"MZ" + b"\0" * 500  # a Windows program, not a scan or a report
    created = client.post(
        "/api/uploads",
        content=data,
        headers=creation_headers(patient, case["id"], "viewer.exe", data),
    )
    assert created.status_code == 201
    status = client.get(created.headers["location"], headers=patient.headers).json()
    assert status["status"] == "complete" and status["result"]["accepted"] == []
    assert [item["filename"] for item in status["result"]["rejected"]] == ["viewer.exe"]
    assert status["result"]["rejected"][0]["reason"]
    assert db.exec(select(CaseFile)).all() == []
    assert bucket_keys(seaweed, case["id"]) == [text_share_key(db, case["id"])]


def test_a_whole_file_cut_short_stores_nothing(
    live: LiveServer, accounts: Accounts, client: TestClient, db: Session, seaweed: EmbeddedS3
):
    patient = accounts.patient()
    case = open_case(client, patient)
    data = samples.dicom("CT_small.dcm")
    headers = creation_headers(patient, case["id"], "ct.dcm", data)
    parts = urlsplit(live.url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        head = f"POST /api/uploads HTTP/1.1\r\nHost: {parts.netloc}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        sock.sendall(f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data[:20_000])
        time.sleep(1.0)  # the server reads what arrived; then the line drops mid-body

    def settled() -> bool:
        db.expire_all()
        uploads = db.exec(select(TusUpload)).all()
        db.commit()
        return len(uploads) == 1 and uploads[0].offset == 0

    assert wait_for(settled, timeout=20)
    time.sleep(0.5)  # had the ingest gone on, its rows would be there by now
    db.expire_all()
    assert db.exec(select(CaseFile)).all() == []
    assert file_objects(db) == []
    assert bucket_keys(seaweed, case["id"]) == [text_share_key(db, case["id"])]
