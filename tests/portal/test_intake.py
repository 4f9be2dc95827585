"""Consent, uploads, validation by content, DICOM indexing and submission through the API."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from portal.accounts.models import Role
from portal.audit.models import AuditEvent
from portal.cases.consent import CURRENT_VERSION
from portal.intake import indexing
from portal.intake.models import CaseFile, DicomInstance, TusChunk, TusUpload
from portal.objects.models import StoredObject
from storage.embedded import EmbeddedS3
from tests.fixtures.app import (
    Account,
    Accounts,
    file_objects,
    open_case,
    submit_case,
    text_share_key,
)
from tests.fixtures.uploads import upload_outcome
from tests.portal import samples
from tests.services import s3

CD_FOLDERS = {"77654033", "98892001", "98892003"}


def upload(client: TestClient, who: Account, case_id: str, *files: tuple[str, bytes]) -> Any:
    return client.post(
        f"/api/cases/{case_id}/files",
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
        headers=who.headers,
    )


def bucket_keys(seaweed: EmbeddedS3, case_id: str) -> list[str]:
    listed = s3(seaweed).list_objects_v2(Bucket=seaweed.bucket, Prefix=f"cases/{case_id}/")
    return [item["Key"] for item in listed.get("Contents", [])]


@pytest.fixture
def patient(accounts: Accounts) -> Account:
    return accounts.patient(name="Olga Ivanova")


@pytest.fixture
def case(client: TestClient, patient: Account) -> dict[str, Any]:
    return open_case(client, patient)


def test_mixed_upload_accepts_by_content_and_explains_rejections(
    client, patient, case, db: Session
):
    response = upload(
        client,
        patient,
        case["id"],
        ("ct.dcm", samples.dicom("CT_small.dcm")),
        ("report.pdf", samples.pdf(3)),
        ("photo-of-report.png", samples.png()),
        ("scan.jpg", samples.jpeg()),
        ("notes.dcm", b"this is just text pretending to be DICOM"),
        ("../../etc/passwd", b"root:x:0:0"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(f["filename"], f["kind"]) for f in body["accepted"]] == [
        ("ct.dcm", "dicom"),
        ("report.pdf", "pdf"),
        ("photo-of-report.png", "png"),
        ("scan.jpg", "jpeg"),
    ]
    assert [f["filename"] for f in body["rejected"]] == ["notes.dcm", "passwd"]
    assert all("DICOM" in f["reason"] or "PDF" in f["reason"] for f in body["rejected"])

    files = {
        f["filename"]: f
        for f in client.get(f"/api/cases/{case['id']}/files", headers=patient.headers).json()[
            "items"
        ]
    }
    assert files["report.pdf"]["page_count"] == 3
    assert (files["photo-of-report.png"]["width"], files["photo-of-report.png"]["height"]) == (
        64,
        48,
    )
    assert files["ct.dcm"]["sha256"] == hashlib.sha256(samples.dicom()).hexdigest()
    actions = [e.action for e in db.exec(select(AuditEvent)).all()]
    assert actions.count("file.upload") == 4 and actions.count("file.reject") == 2


def test_download_returns_identical_bytes_and_is_audited(client, patient, case, db: Session):
    original = samples.dicom("MR_small.dcm")
    file_id = upload(client, patient, case["id"], ("mr.dcm", original)).json()["accepted"][0]["id"]
    content = client.get(
        f"/api/cases/{case['id']}/files/{file_id}/content", headers=patient.headers
    )
    assert content.status_code == 200
    assert content.content == original
    assert content.headers["content-type"] == "application/dicom"
    assert content.headers["cache-control"] == "no-store"
    assert "attachment" in content.headers["content-disposition"]
    downloads = db.exec(select(AuditEvent).where(AuditEvent.action == "file.download")).all()
    assert [e.entity_id for e in downloads] == [file_id]


def test_rejected_files_leave_nothing_behind(
    client, patient, case, db: Session, seaweed: EmbeddedS3
):
    broken = bytearray(samples.dicom("CT_small.dcm"))
    broken[:2] = b"MZ"  # an executable hiding in the preamble
    truncated = samples.dicom("CT_small.dcm")[:-1000]
    response = upload(
        client,
        patient,
        case["id"],
        ("a.dcm", bytes(broken)),
        ("b.dcm", truncated),
        ("c.txt", b"x" * 5000),
    )
    assert response.json()["accepted"] == []
    assert len(response.json()["rejected"]) == 3
    assert bucket_keys(seaweed, case["id"]) == [text_share_key(db, case["id"])]
    assert db.exec(select(CaseFile)).all() == [] and file_objects(db) == []


def test_duplicate_instances_are_accepted_once(client, patient, case, db: Session):
    ct = samples.dicom("CT_small.dcm")
    first = upload(client, patient, case["id"], ("ct.dcm", ct)).json()["accepted"][0]
    again = upload(client, patient, case["id"], ("copy.dcm", ct)).json()["accepted"][0]
    assert again["duplicate"] is True and again["id"] == first["id"]
    assert len(db.exec(select(CaseFile)).all()) == 1


def test_an_instance_uploaded_meanwhile_is_a_duplicate_and_leaves_no_object(
    client, patient, case, db: Session, seaweed: EmbeddedS3, monkeypatch: pytest.MonkeyPatch
):
    # Two uploads of one instance at once: both look it up before either writes. The one that
    # writes second must answer "duplicate", not fail, and must not leave its object behind.
    ct = samples.dicom("CT_small.dcm")
    first = upload(client, patient, case["id"], ("ct.dcm", ct)).json()["accepted"][0]
    unseen = indexing.Known(file=None, study=None, series=None)
    monkeypatch.setattr(indexing, "lookup", lambda **_: unseen)
    response = upload(client, patient, case["id"], ("copy.dcm", ct))
    assert response.status_code == 200, response.text
    again = response.json()["accepted"][0]
    assert again["duplicate"] is True and again["id"] == first["id"]
    assert len(db.exec(select(CaseFile)).all()) == 1
    assert len(bucket_keys(seaweed, case["id"])) == 2  # the file and the text key share


def test_hospital_cd_zip_with_dicomdir_reports_completeness(
    client, patient, case, db: Session, seaweed
):
    folder = samples.dicomdir_folder()
    extras = {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).parts[0] not in CD_FOLDERS | {"DICOMDIR"}
    }
    missing = "98892003/MR700/4648"
    cd = samples.zip_folder(folder, skip=extras | {missing})
    answer = upload(client, patient, case["id"], ("hospital-cd.zip", cd)).json()
    # The request answers once the ZIP is stored; its entries are imported by a job.
    assert answer["accepted"] == [] and answer["archives"] == []
    (queued,) = answer["queued"]
    assert queued["archive"] == "hospital-cd.zip"
    assert queued["progress"] == f"/api/uploads/{queued['upload_id']}"
    outcome = upload_outcome(lambda: client.get(queued["progress"], headers=patient.headers))
    assert outcome["status"] == "complete", outcome
    body = outcome["result"]
    assert body["rejected"] == []
    assert len(body["accepted"]) == 30
    report = body["archives"][0]
    assert report["dicomdir_present"] is True and report["referenced"] == 31
    assert report["missing"] == [missing]
    studies = client.get(f"/api/cases/{case['id']}/studies", headers=patient.headers).json()
    assert sum(s["instances"] for study in studies["studies"] for s in study["series"]) == 30
    assert studies["archives"][0]["missing"] == [missing]
    assert len(bucket_keys(seaweed, case["id"])) == 31  # entries and text key share, no ZIP
    assert len(db.exec(select(DicomInstance)).all()) == 30
    assert db.exec(select(TusChunk)).all() == []  # the staged ZIP is gone with its row


def test_a_multipart_request_that_breaks_off_keeps_no_staged_zip(
    client, patient, case, db: Session, seaweed
):
    """All or nothing: a ZIP staged for import, then a part that never ends. The sender
    never learns of the ZIP, so it is not imported and its bytes are deleted."""
    cd = samples.zip_folder(samples.dicomdir_folder())
    boundary = "----portal-test"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="cd.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    second = (
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="files"; '
        'filename="cut.dcm"\r\nContent-Type: application/dicom\r\n\r\n'
    ).encode()
    body = head + cd + second + b"DICM" * 100  # no closing boundary: the body is cut short
    response = client.post(
        f"/api/cases/{case['id']}/files",
        content=body,
        headers={**patient.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 400, response.text
    db.expire_all()
    assert db.exec(select(TusUpload)).all() == []
    assert db.exec(select(TusChunk)).all() == []
    assert db.exec(select(CaseFile)).all() == []
    assert len(bucket_keys(seaweed, case["id"])) <= 1  # at most the text key share


def test_studies_hierarchy_and_non_latin_names(client, patient, case):
    upload(
        client,
        patient,
        case["id"],
        ("ru.dcm", samples.dicom("chrRuss.dcm")),
        ("utf8.dcm", samples.dicom("chrX1.dcm")),
        ("ct.dcm", samples.dicom("CT_small.dcm")),
    )
    studies = client.get(f"/api/cases/{case['id']}/studies", headers=patient.headers).json()[
        "studies"
    ]
    names = {s["patient_name"] for s in studies}
    russian = samples.patient_name("chrRuss.dcm")
    assert any("\u0400" <= ch <= "\u04ff" for ch in russian)  # decoded to Cyrillic, not bytes
    assert russian in names
    assert any(n == "Wang^XiaoDong=王^小東" for n in names)
    ct = next(s for s in studies if s["modalities"] == ["CT"])
    assert ct["series"][0]["instances"] == 1 and ct["series"][0]["modality"] == "CT"


def test_identity_mismatch_is_shown_to_staff_only(client, accounts: Accounts, patient, case):
    upload(client, patient, case["id"], ("ct.dcm", samples.dicom("CT_small.dcm")))
    own_view = client.get(f"/api/cases/{case['id']}/studies", headers=patient.headers).json()
    assert own_view["identity"] is None
    submit_case(client, patient, case["id"])
    coordinator = accounts.staff(Role.coordinator)
    identity = client.get(f"/api/cases/{case['id']}/studies", headers=coordinator.headers).json()[
        "identity"
    ]
    assert identity["mismatch"] is True
    assert identity["account_name"] == "Olga Ivanova" and identity["dicom_names"] == [
        "CompressedSamples^CT1"
    ]


def test_limits_are_enforced(tmp_path, database_url, seaweed, sensitive):
    from portal.app import create_app
    from tests.fixtures.app import make_settings

    settings = make_settings(
        tmp_path, database_url, seaweed, max_file_bytes=50_000, case_quota_bytes=100_000
    )
    app: FastAPI = create_app(settings)
    with TestClient(app) as client:
        patient = Accounts(client, app).patient()
        case = open_case(client, patient)
        too_big = upload(client, patient, case["id"], ("big.png", samples.noise_png(200)))
        assert "larger than" in too_big.json()["rejected"][0]["reason"]
        for _ in range(3):  # about 30 KB each
            accepted = upload(client, patient, case["id"], ("p.png", samples.noise_png(100)))
            assert len(accepted.json()["accepted"]) == 1
        over = upload(client, patient, case["id"], ("one-more.png", samples.noise_png(100)))
        assert "quota" in over.json()["rejected"][0]["reason"]
        assert bucket_keys(seaweed, case["id"]) and len(bucket_keys(seaweed, case["id"])) == 4


def test_consent_and_submission_rules(client, patient, case, accounts: Accounts):
    url = f"/api/cases/{case['id']}"
    refused = client.post(f"{url}/submit", headers=patient.headers)
    assert refused.status_code == 409 and "consent" in refused.json()["detail"]
    old = client.post(
        f"{url}/consent", json={"accepted": True, "version": "2020-01"}, headers=patient.headers
    )
    assert old.status_code == 409 and CURRENT_VERSION in old.json()["detail"]
    declined = client.post(
        f"{url}/consent",
        json={"accepted": False, "version": CURRENT_VERSION},
        headers=patient.headers,
    )
    assert declined.status_code == 422
    given = client.post(
        f"{url}/consent",
        json={"accepted": True, "version": CURRENT_VERSION},
        headers=patient.headers,
    )
    assert given.status_code == 201 and given.json()["version"] == CURRENT_VERSION
    no_files = client.post(f"{url}/submit", headers=patient.headers)
    assert no_files.status_code == 409 and "at least one" in no_files.json()["detail"]
    upload(client, patient, case["id"], ("ct.dcm", samples.dicom()))
    submitted = client.post(f"{url}/submit", headers=patient.headers)
    # No specialist exists here, so matching hands the case to a coordinator.
    assert submitted.status_code == 200 and submitted.json()["status"] == "triage"
    steps = [e["to_status"] for e in submitted.json()["timeline"]]
    assert steps == ["draft", "submitted", "triage"]
    assert client.post(f"{url}/submit", headers=patient.headers).status_code == 409
    late = upload(client, patient, case["id"], ("more.dcm", samples.dicom("MR_small.dcm")))
    assert late.status_code == 409
    text = client.get("/api/consent", headers=patient.headers).json()
    assert text["version"] == CURRENT_VERSION and "second opinion" in text["text"]


def test_bad_requests_get_clear_messages(client, patient, case):
    url = f"/api/cases/{case['id']}/files"
    no_files = client.post(
        url, files=[("other", ("x.pdf", samples.pdf(), "application/pdf"))], headers=patient.headers
    )
    assert no_files.status_code == 422 and "at least one file" in no_files.json()["detail"]
    not_multipart = client.post(url, json={"files": []}, headers=patient.headers)
    assert (
        not_multipart.status_code == 422 and "multipart/form-data" in not_multipart.json()["detail"]
    )
    broken = client.post(
        url,
        content=b"--xyz\r\ngarbage",
        headers={**patient.headers, "Content-Type": "multipart/form-data; boundary=abc"},
    )
    assert broken.status_code == 422


def test_other_people_cannot_touch_the_files(client, accounts: Accounts, patient, case):
    file_id = upload(client, patient, case["id"], ("ct.dcm", samples.dicom())).json()["accepted"][
        0
    ]["id"]
    stranger = accounts.patient()
    specialist = accounts.staff(Role.specialist)
    for who in (stranger, specialist):
        assert upload(client, who, case["id"], ("x.dcm", samples.dicom())).status_code == 404
        assert client.get(f"/api/cases/{case['id']}/files", headers=who.headers).status_code == 404
        assert (
            client.get(
                f"/api/cases/{case['id']}/files/{file_id}/content", headers=who.headers
            ).status_code
            == 404
        )
        assert (
            client.get(f"/api/cases/{case['id']}/studies", headers=who.headers).status_code == 404
        )
    coordinator = accounts.staff(Role.coordinator)
    content = f"/api/cases/{case['id']}/files/{file_id}/content"
    assert client.get(content, headers=coordinator.headers).status_code == 403  # a draft
    submit_case(client, patient, case["id"])
    assert client.get(content, headers=coordinator.headers).status_code == 200
    assert upload(client, coordinator, case["id"], ("x.dcm", samples.dicom())).status_code == 403
    other_case = open_case(client, stranger)
    cross = client.get(
        f"/api/cases/{other_case['id']}/files/{file_id}/content", headers=stranger.headers
    )
    assert cross.status_code == 404


def test_erasing_a_case_removes_its_files_index_and_uploads(
    client, patient, case, db: Session, settings, seaweed: EmbeddedS3
):
    from portal import storage_commands
    from portal.intake.models import DicomStudy, TusUpload

    upload(client, patient, case["id"], ("ct.dcm", samples.dicom()), ("r.pdf", samples.pdf()))
    client.post(
        "/api/uploads",
        content=b"%PDF-1.4 partial",
        headers={
            **patient.headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": "1000",
            "Content-Type": "application/offset+octet-stream",
            "Upload-Metadata": "case_id "
            + __import__("base64").b64encode(case["id"].encode()).decode(),
        },
    )
    # two files, one staged tus chunk and the text key share
    assert len(bucket_keys(seaweed, case["id"])) == 4
    assert storage_commands.erase_case(settings, case["id"]) == 0
    db.expire_all()
    for model in (CaseFile, StoredObject, DicomInstance, DicomStudy, TusUpload):
        assert db.exec(select(model)).all() == [], model.__name__
    assert bucket_keys(seaweed, case["id"]) == []
