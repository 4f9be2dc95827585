"""DICOM files whose header is longer than the 4 MiB head, through every way a file arrives.

Multipart (``POST /api/cases/{id}/files``), tus (creation, then PATCHes) and DICOMweb STOW-RS
all end in the same ingest: each file is accepted, indexed, and downloaded byte for byte;
a hostile header is still refused with a sentence, and leaves nothing stored.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread
from sqlmodel import Session, select

from portal.intake.dicom import quiet_pydicom
from portal.intake.models import CaseFile
from storage.embedded import EmbeddedS3
from tests.fixtures.app import Account, Accounts, open_case, text_share_key
from tests.intake import long_headers
from tests.portal.test_intake import bucket_keys, upload
from tests.portal.test_tus import TUS, metadata
from tests.services import wait_for

LONG_HEADERS: dict[str, Callable[[], bytes]] = {
    "enhanced_mr": long_headers.enhanced_mr,
    "encapsulated_pdf": long_headers.encapsulated_pdf,
    "private_ob": long_headers.private_ob,
}
CHUNK = 3 * 1024 * 1024
# Reading a header is the same on either database; multipart runs on both, the rest on one.
ONE_DATABASE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return {name: build() for name, build in LONG_HEADERS.items()}


def send_by_tus(client: TestClient, who: Account, case_id: str, data: bytes) -> dict[str, Any]:
    """Create an upload, PATCH it in 3 MiB chunks, and answer its final status."""
    created = client.post(
        "/api/uploads",
        headers={
            **who.headers,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata(case_id, "long-header.dcm"),
        },
    )
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    for offset in range(0, len(data), CHUNK):
        patched = client.patch(
            location,
            content=data[offset : offset + CHUNK],
            headers={
                **who.headers,
                **TUS,
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert patched.status_code == 204, patched.text
    # The last PATCH hands the upload to a job; the app's own workers run it.
    assert wait_for(
        lambda: client.get(location, headers=who.headers).json()["status"] == "complete",
        timeout=60,
    )
    status: dict[str, Any] = client.get(location, headers=who.headers).json()
    return dict(status["result"])


def send_by_stow(client: TestClient, who: Account, case_id: str, *instances: bytes) -> Any:
    boundary = secrets.token_hex(16)
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + data + b"\r\n"
        for data in instances
    )
    body += f"--{boundary}--\r\n".encode()
    return client.post(
        f"/api/cases/{case_id}/dicomweb/studies",
        content=body,
        headers={
            **who.headers,
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        },
    )


def assert_indexed_and_identical(
    client: TestClient, who: Account, case_id: str, sent: dict[str, bytes]
) -> None:
    """Each file is listed with its sha256, filed in the study index, and downloads as sent."""
    listed = client.get(f"/api/cases/{case_id}/files", headers=who.headers).json()["items"]
    by_digest = {item["sha256"]: item for item in listed}
    studies = client.get(f"/api/cases/{case_id}/studies", headers=who.headers).json()["studies"]
    assert len(studies) == len(sent)
    assert all(s["series"][0]["instances"] == 1 for s in studies)
    for data in sent.values():
        item = by_digest[hashlib.sha256(data).hexdigest()]
        content = client.get(
            f"/api/cases/{case_id}/files/{item['id']}/content", headers=who.headers
        )
        assert content.status_code == 200 and content.content == data


def test_long_headers_are_accepted_through_multipart(
    client: TestClient, accounts: Accounts, files: dict[str, bytes]
):
    patient = accounts.patient()
    case = open_case(client, patient)
    answer = upload(client, patient, case["id"], *files.items()).json()
    assert answer["rejected"] == []
    assert [a["kind"] for a in answer["accepted"]] == ["dicom"] * 3
    assert_indexed_and_identical(client, patient, case["id"], files)


@ONE_DATABASE
def test_long_headers_are_accepted_through_tus(
    client: TestClient, accounts: Accounts, files: dict[str, bytes]
):
    patient = accounts.patient()
    case = open_case(client, patient)
    for data in files.values():
        result = send_by_tus(client, patient, case["id"], data)
        assert result["rejected"] == [] and result["accepted"][0]["kind"] == "dicom"
    assert_indexed_and_identical(client, patient, case["id"], files)


@ONE_DATABASE
def test_long_headers_are_accepted_through_stow(
    client: TestClient, accounts: Accounts, files: dict[str, bytes]
):
    patient = accounts.patient()
    case = open_case(client, patient)
    stored = send_by_stow(client, patient, case["id"], *files.values())
    assert stored.status_code == 200, stored.text
    assert "00081198" not in stored.json()  # no Failed SOP Sequence
    assert_indexed_and_identical(client, patient, case["id"], files)
    # WADO-RS metadata reads the whole header too; the 6 MiB document is left as bulk data.
    study = pydicom_study_uid(files["encapsulated_pdf"])
    answer = client.get(
        f"/api/cases/{case['id']}/dicomweb/studies/{study}/metadata", headers=patient.headers
    )
    assert answer.status_code == 200, answer.text
    document = answer.json()[0]["00420011"]  # Encapsulated Document
    assert "BulkDataURI" in document and "InlineBinary" not in document


def pydicom_study_uid(data: bytes) -> str:
    with quiet_pydicom():
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True, defer_size=1024)
    return str(ds.StudyInstanceUID)


@ONE_DATABASE
def test_hostile_headers_are_refused_and_leave_nothing(
    client: TestClient, accounts: Accounts, db: Session, seaweed: EmbeddedS3
):
    patient = accounts.patient()
    case = open_case(client, patient)
    answer = upload(
        client,
        patient,
        case["id"],
        ("four-gib.dcm", long_headers.claims_four_gib()),
        ("nested.dcm", long_headers.nested_sequences(1000)),
        ("tiny.dcm", long_headers.tiny_elements(1_000_000)),
    )
    assert answer.status_code == 200
    assert answer.json()["accepted"] == []
    refused = {r["filename"]: r for r in answer.json()["rejected"]}
    assert "ends inside its DICOM header" in refused["four-gib.dcm"]["reason"]
    assert "nests its sequences deeper" in refused["nested.dcm"]["reason"]
    assert "more elements than we accept" in refused["tiny.dcm"]["reason"]
    assert db.exec(select(CaseFile)).all() == []
    assert bucket_keys(seaweed, case["id"]) == [text_share_key(db, case["id"])]
