"""Resumable uploads (tus 1.0.0) with the real tuspy client, dropped connections and restarts."""

from __future__ import annotations

import base64
import hashlib
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from tusclient import client as tus_client

from portal.intake.models import CaseFile, TusChunk, TusUpload
from portal.settings import Settings
from tests.fixtures.app import Account, Accounts, file_objects, open_case
from tests.fixtures.live import LiveServer, ServerProcess
from tests.fixtures.logs import SensitiveValues
from tests.fixtures.uploads import upload_outcome
from tests.portal import samples

TUS = {"Tus-Resumable": "1.0.0"}


def metadata(case_id: str, filename: str) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in (("case_id", case_id), ("filename", filename))
    )


def tuspy_uploader(
    server: str, who: Account, case_id: str, data: bytes, chunk_size: int, **kwargs: Any
):  # type: ignore[no-untyped-def]
    import io

    client = tus_client.TusClient(f"{server}/api/uploads", headers=who.headers)
    return client.uploader(
        file_stream=io.BytesIO(data),
        chunk_size=chunk_size,
        metadata={"case_id": case_id, "filename": "series.dcm"},
        **kwargs,
    )


def test_options_advertises_version_extensions_and_checksums(client: TestClient):
    response = client.options("/api/uploads")
    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    assert set(response.headers["tus-extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "checksum",
        "expiration",
        "termination",
    }
    assert response.headers["tus-checksum-algorithm"] == "sha1,sha256"


def test_tuspy_uploads_in_chunks_with_checksums(
    live: LiveServer, accounts: Accounts, client: TestClient, db: Session
):
    patient = accounts.patient()
    case = open_case(client, patient)
    data = samples.dicom("MR_small.dcm")
    uploader = tuspy_uploader(
        live.url, patient, case["id"], data, chunk_size=2000, upload_checksum=True
    )
    uploader.upload()
    upload_id = uploader.url.rsplit("/", 1)[-1]
    status = upload_outcome(
        lambda: httpx.get(f"{live.url}/api/uploads/{upload_id}", headers=patient.headers)
    )
    assert status["status"] == "complete" and status["offset"] == len(data)
    assert status["result"]["accepted"][0]["kind"] == "dicom"
    files = db.exec(select(CaseFile)).all()
    assert [f.sha256 for f in files] == [hashlib.sha256(data).hexdigest()] and files[
        0
    ].source == "tus"
    assert db.exec(select(TusChunk)).all() == []  # staged chunks are gone once ingested
    assert len(file_objects(db)) == 1


def _patch_and_drop(
    url: str, token: str, upload_path: str, offset: int, body: bytes, send: int
) -> None:
    """Send a PATCH that promises ``len(body)`` bytes, deliver ``send`` of them, hang up."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        head = (
            f"PATCH {upload_path} HTTP/1.1\r\nHost: {parts.netloc}\r\nTus-Resumable: 1.0.0\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Upload-Offset: {offset}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        sock.sendall(head + body[:send])
        time.sleep(1.0)  # the server reads what arrived; then the line drops mid-body


def test_dropped_connection_keeps_what_arrived_and_tuspy_resumes(
    live: LiveServer, accounts: Accounts, client: TestClient, db: Session
):
    patient = accounts.patient()
    case = open_case(client, patient)
    data = samples.dicom("CT_small.dcm")
    created = httpx.post(
        f"{live.url}/api/uploads",
        headers={
            **patient.headers,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata(case["id"], "ct.dcm"),
        },
    )
    assert created.status_code == 201
    location = created.headers["location"]
    _patch_and_drop(live.url, patient.token or "", location, 0, data, send=20_000)

    def offset() -> int:
        head = httpx.head(f"{live.url}{location}", headers={**patient.headers, **TUS})
        return int(head.headers["upload-offset"])

    from tests.services import wait_for

    assert wait_for(lambda: offset() == 20_000, timeout=20), offset()
    uploader = tuspy_uploader(
        live.url, patient, case["id"], data, chunk_size=10_000, url=f"{live.url}{location}"
    )
    uploader.upload()
    upload_outcome(lambda: httpx.get(f"{live.url}{location}", headers=patient.headers))
    stored = db.exec(select(CaseFile)).one()
    assert stored.sha256 == hashlib.sha256(data).hexdigest()


def test_upload_resumes_across_a_server_restart(
    settings: Settings,
    accounts: Accounts,
    client: TestClient,
    db: Session,
    tmp_path: Path,
    sensitive: SensitiveValues,
):
    patient = accounts.patient()
    case = open_case(client, patient)
    data = samples.dicom("MR_small.dcm")
    server = ServerProcess(settings, tmp_path / "serve.log")
    sensitive.add_log_file(server.log)
    server.start()
    try:
        uploader = tuspy_uploader(server.url, patient, case["id"], data, chunk_size=3000)
        uploader.upload_chunk()
        uploader.upload_chunk()
        url = uploader.url
        server.stop()
        server.start()  # same database and storage, new process
        resumed = tuspy_uploader(
            server.url,
            patient,
            case["id"],
            data,
            chunk_size=3000,
            url=url.replace(url.split("/api/")[0], server.url),
        )
        assert resumed.get_offset() == 6000
        resumed.upload()
        upload_outcome(lambda: httpx.get(str(resumed.url), headers=patient.headers))
    finally:
        server.stop()
    db.expire_all()
    assert db.exec(select(CaseFile)).one().sha256 == hashlib.sha256(data).hexdigest()


def test_checksum_mismatch_is_460_and_keeps_nothing(
    client: TestClient, accounts: Accounts, db: Session
):
    patient = accounts.patient()
    case = open_case(client, patient)
    created = client.post(
        "/api/uploads",
        headers={
            **patient.headers,
            **TUS,
            "Upload-Length": "10",
            "Upload-Metadata": metadata(case["id"], "x.pdf"),
        },
    )
    location = created.headers["location"]
    wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()  # noqa: S324 - tus names sha1
    response = client.patch(
        location,
        content=b"%PDF-1.4\n%",
        headers={
            **patient.headers,
            **TUS,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": "0",
            "Upload-Checksum": f"sha1 {wrong}",
        },
    )
    assert response.status_code == 460
    assert client.head(location, headers={**patient.headers, **TUS}).headers["upload-offset"] == "0"
    assert file_objects(db) == []


def test_protocol_errors(client: TestClient, accounts: Accounts):
    patient = accounts.patient()
    case = open_case(client, patient)
    base = {**patient.headers, **TUS, "Upload-Metadata": metadata(case["id"], "a.dcm")}
    assert (
        client.post(
            "/api/uploads", headers={**base, "Tus-Resumable": "0.2.2", "Upload-Length": "5"}
        ).status_code
        == 412
    )
    assert client.post("/api/uploads", headers={**base, "Upload-Length": "lots"}).status_code == 422
    too_big = client.post("/api/uploads", headers={**base, "Upload-Length": str(10**13)})
    assert too_big.status_code == 413
    no_case = client.post("/api/uploads", headers={**patient.headers, **TUS, "Upload-Length": "5"})
    assert no_case.status_code == 422 and "case_id" in no_case.json()["detail"]
    location = client.post("/api/uploads", headers={**base, "Upload-Length": "5"}).headers[
        "location"
    ]
    patch = {**patient.headers, **TUS, "Content-Type": "application/offset+octet-stream"}
    assert (
        client.patch(location, content=b"ab", headers={**patch, "Upload-Offset": "3"}).status_code
        == 409
    )
    assert (
        client.patch(
            location,
            content=b"ab",
            headers={**patch, "Content-Type": "text/plain", "Upload-Offset": "0"},
        ).status_code
        == 415
    )
    assert (
        client.patch(
            location, content=b"abcdefgh", headers={**patch, "Upload-Offset": "0"}
        ).status_code
        == 413
    )


def test_only_the_owner_can_touch_an_upload(client: TestClient, accounts: Accounts, db: Session):
    patient = accounts.patient()
    case = open_case(client, patient)
    location = client.post(
        "/api/uploads",
        headers={
            **patient.headers,
            **TUS,
            "Upload-Length": "100",
            "Upload-Metadata": metadata(case["id"], "a.dcm"),
        },
    ).headers["location"]
    stranger = accounts.patient()
    headers = {**stranger.headers, **TUS}
    assert client.head(location, headers=headers).status_code == 404
    assert (
        client.patch(
            location,
            content=b"x",
            headers={
                **headers,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
            },
        ).status_code
        == 404
    )
    assert client.delete(location, headers=headers).status_code == 404
    into_foreign = client.post(
        "/api/uploads",
        headers={
            **headers,
            "Upload-Length": "100",
            "Upload-Metadata": metadata(case["id"], "a.dcm"),
        },
    )
    assert into_foreign.status_code == 404
    assert client.delete(location, headers={**patient.headers, **TUS}).status_code == 204
    assert client.head(location, headers={**patient.headers, **TUS}).status_code == 404


def test_creation_with_upload_and_expiry_cleanup(
    client: TestClient, accounts: Accounts, app, db: Session
):
    from datetime import timedelta

    from portal.db import utcnow
    from portal.intake import tus

    patient = accounts.patient()
    case = open_case(client, patient)
    pdf = samples.pdf()
    created = client.post(
        "/api/uploads",
        content=pdf[:100],
        headers={
            **patient.headers,
            **TUS,
            "Upload-Length": str(len(pdf)),
            "Content-Type": "application/offset+octet-stream",
            "Upload-Metadata": metadata(case["id"], "r.pdf"),
        },
    )
    assert created.status_code == 201 and created.headers["upload-offset"] == "100"
    assert "GMT" in created.headers["upload-expires"]
    upload = db.exec(select(TusUpload)).one()
    upload.expires_at = utcnow() - timedelta(seconds=1)
    db.add(upload)
    db.commit()
    assert (
        client.head(created.headers["location"], headers={**patient.headers, **TUS}).status_code
        == 410
    )
    assert tus.expire_uploads(session=db, vault=app.state.vault) == 1
    assert db.exec(select(TusUpload)).all() == [] and file_objects(db) == []


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_both_checksum_algorithms_are_accepted(
    client: TestClient, accounts: Accounts, algorithm: str
):
    patient = accounts.patient()
    case = open_case(client, patient)
    data = samples.png()
    location = client.post(
        "/api/uploads",
        headers={
            **patient.headers,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata(case["id"], "p.png"),
        },
    ).headers["location"]
    digest = base64.b64encode(getattr(hashlib, algorithm)(data).digest()).decode()
    done = client.patch(
        location,
        content=data,
        headers={
            **patient.headers,
            **TUS,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": "0",
            "Upload-Checksum": f"{algorithm} {digest}",
        },
    )
    assert done.status_code == 204 and done.headers["upload-offset"] == str(len(data))
    outcome = upload_outcome(lambda: client.get(location, headers=patient.headers))
    assert outcome["result"]["accepted"][0]["kind"] == "png"


JS = Path(__file__).resolve().parents[1] / "js"


def run_tus_js(*args: str) -> str:
    """The browser's tus client (tus-js-client, installed by ``make test``) under Node."""
    import shutil
    import subprocess

    from tests.services import unavailable

    node = shutil.which("node")
    if node is None or not (JS / "node_modules" / "tus-js-client").exists():
        unavailable("Node.js with tus-js-client (make test runs npm ci in tests/js)")
    assert node is not None
    done = subprocess.run(
        [node, str(JS / "tus_upload.mjs"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_tus_js_client_uploads_stops_and_resumes(
    live: LiveServer, accounts: Accounts, client: TestClient, db: Session, tmp_path: Path
):
    patient = accounts.patient()
    case = open_case(client, patient)
    path = tmp_path / "MR_small.dcm"
    path.write_bytes(samples.dicom("MR_small.dcm"))
    endpoint = f"{live.url}/api/uploads"
    partial = run_tus_js(endpoint, patient.token or "", case["id"], str(path), "2000", "4000")
    assert partial.startswith("PARTIAL ")
    url, offset = partial.split()[1], int(partial.split()[2])
    assert offset >= 4000
    head = httpx.head(url, headers={**patient.headers, **TUS})
    assert int(head.headers["upload-offset"]) == offset
    done = run_tus_js(endpoint, patient.token or "", case["id"], str(path), "2000", url)
    assert done == f"DONE {url}"  # printed once the completion job reported complete
    stored = db.exec(select(CaseFile)).one()
    assert stored.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
