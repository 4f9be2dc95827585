"""The OpenAPI document tells the truth: schemathesis fuzzes every operation against it.

Each operation gets a fixed budget of generated requests (valid and invalid ones), sent with a
patient's and with a coordinator's bearer token (CSRF does not apply to bearer tokens). Path
ids are either generated or, half the time, those of a real case with a DICOM study, a PDF
record, a viewer token and a tus upload, so requests also reach past the 404. Every answer
must not be a server error, must have a documented status, content type and headers, and a body
that matches the documented schema. See docs/api.md.
"""

from __future__ import annotations

import base64
import copy
import os
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlmodel import Session, select

from portal.accounts.models import Role
from portal.intake.models import DicomInstance, DicomSeries, DicomStudy
from portal.pagination import encode_cursor
from tests.fixtures.app import Account, Accounts, open_case
from tests.portal import samples

EXAMPLES_PER_OPERATION = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "10"))
"""Generated requests per operation, identity and generation mode (valid / invalid data);
the default keeps the run near a minute per database, raise it locally to search deeper."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# tus chunks and STOW-RS bodies travel as raw bytes, like any octet stream.
schemathesis.serializer.alias(
    ["application/offset+octet-stream", "multipart/related"], "application/octet-stream"
)
# Operations that end or change the shared case run late, so the others see it whole; signing
# out (it revokes the tokens the fuzzing uses) runs last of all.
LATE = ("/cancel", "/submit", "/close", "DELETE")
LAST = "POST /api/auth/logout"

# Requests that fail because of a bug in a module another change owns. Each names the bug;
# remove the entry once that fix is merged. Keyed by (method, path template).
KNOWN_BUGS: dict[tuple[str, str], str] = {}


@dataclass
class Tally:
    operations: int = 0
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)


def _real_ids(client: TestClient, db: Session, owner: Account) -> dict[str, str]:
    case = open_case(client, owner)
    uploaded = client.post(
        f"/api/cases/{case['id']}/files",
        files=[
            ("files", ("ct.dcm", samples.dicom("CT_small.dcm"), "application/dicom")),
            ("files", ("report.pdf", samples.pdf(1), "application/pdf")),
        ],
        headers=owner.headers,
    ).json()["accepted"]
    dicom = next(f["id"] for f in uploaded if f["kind"] == "dicom")
    record = next(f["id"] for f in uploaded if f["kind"] == "pdf")
    instance = db.exec(select(DicomInstance).where(DicomInstance.file_id == uuid.UUID(dicom))).one()
    series = db.get(DicomSeries, instance.series_id)
    assert series is not None
    study = db.get(DicomStudy, series.study_id)
    assert study is not None
    db.commit()
    token = client.post(
        f"/api/cases/{case['id']}/dicomweb-tokens", json={}, headers=owner.headers
    ).json()
    metadata = ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in (("case_id", case["id"]), ("filename", "later.dcm"))
    )
    upload = client.post(
        "/api/uploads",
        headers={
            **owner.headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": "100",
            "Upload-Metadata": metadata,
        },
    )
    return {
        "case_id": case["id"],
        "file_id": dicom,
        "record_id": record,
        "series_id": str(instance.series_id),
        "instance_id": str(instance.id),
        "study": study.study_instance_uid,
        "series": series.series_instance_uid,
        "instance": instance.sop_instance_uid,
        "token_id": token["id"],
        "upload_id": upload.headers["Location"].rsplit("/", 1)[-1],
        "frame": "1",
        "frame_list": "1",
        "page": "1",
    }


def _known(operation: Any, real: dict[str, str]) -> dict[str, str]:
    """The real ids this operation's path can take."""
    names = {p.name for p in operation.path_parameters}
    known = {name: real[name] for name in names if name in real}
    if "file_id" in names and "/records/" in operation.path:
        known["file_id"] = real["record_id"]
    return known


def _order(operation: Any) -> tuple[bool, bool, str]:
    label = f"{operation.method.upper()} {operation.path}"
    return label == LAST, any(mark in label for mark in LATE), label


def _fuzz(
    operation: Any,
    session: asgi.ASGIClient,
    identities: dict[str, dict[str, str]],
    known: dict[str, str],
    tally: Tally,
) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        try:
            strategy = operation.as_strategy(generation_mode=mode)
        except Exception as exc:  # an operation schemathesis cannot generate for is a finding
            tally.failures.append(f"{label} [{mode.value}]: no strategy: {exc!r}")
            continue
        for who, headers in identities.items():
            run = _runner(
                operation, session, headers, known, tally, f"{label} [{mode.value}, {who}]"
            )
            settings = hypothesis.settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                suppress_health_check=list(hypothesis.HealthCheck),
            )
            try:
                hypothesis.given(case=strategy, use_real=st.booleans())(settings(run))()
            except hypothesis.errors.Unsatisfiable:
                # Nothing to make invalid (no parameters, no body): no negative cases exist.
                assert mode == GenerationMode.NEGATIVE, label


def _runner(
    operation: Any,
    session: asgi.ASGIClient,
    headers: dict[str, str],
    known: dict[str, str],
    tally: Tally,
    label: str,
) -> Callable[..., None]:
    def run(case: schemathesis.Case, use_real: bool) -> None:
        if use_real and case.path_parameters is not None:
            case.path_parameters.update(known)
        tally.requests += 1
        try:
            response = case.call(session=session, headers=headers)
        except Exception as exc:  # the app raised: a server error (the client re-raises it)
            tally.statuses[500] += 1
            curl = " ".join(case.as_curl_command().split())[:400]
            tally.failures.append(f"{label}: server error {type(exc).__name__}: {curl}")
            return
        tally.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, BaseExceptionGroup) as found:
            problems = found.exceptions if isinstance(found, BaseExceptionGroup) else [found]
            said = "; ".join(
                f"{getattr(p, 'title', type(p).__name__)}: "
                + " ".join(str(getattr(p, "message", p)).split())[:300]
                for p in problems
            )
            request = response.request
            tally.failures.append(
                f"{label}: {request.method} {request.url} -> {response.status_code} "
                f"{response.text[:160]!r}: {said}"
            )

    return run


@pytest.mark.slow
def test_every_operation_keeps_to_the_openapi_document(
    app: FastAPI, client: TestClient, accounts: Accounts, db: Session
):
    patient, coordinator = accounts.patient(), accounts.staff(Role.coordinator)
    real = _real_ids(client, db, patient)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
    identities = {
        "patient": {"Authorization": f"Bearer {patient.token}"},
        "coordinator": {"Authorization": f"Bearer {coordinator.token}"},
    }
    session = asgi.get_client(app)
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=_order)
    tally = Tally()
    for operation in operations:
        if (operation.method.upper(), operation.path) in KNOWN_BUGS:
            continue
        tally.operations += 1
        _fuzz(operation, session, identities, _known(operation, real), tally)
    print(
        f"\nschemathesis: {tally.operations} operations, {tally.requests} requests, "
        f"{len(tally.failures)} failures; statuses {sorted(tally.statuses.items())}"
    )
    assert not tally.failures, "\n".join(tally.failures[:60])


@pytest.mark.parametrize("body", [b"\xc3\x28", b'{"subject": "\xc3"}'])
def test_a_json_body_that_is_not_text_is_invalid_json_not_a_bad_request(
    client: TestClient, accounts: Accounts, body: bytes
):
    patient = accounts.patient()
    headers = {**patient.headers, "Content-Type": "application/json"}
    answer = client.post("/api/cases", content=body, headers=headers)
    assert answer.status_code == 422
    assert answer.json() == {"detail": "The request body is not valid JSON."}


def test_the_fuzzing_finds_an_undocumented_status(
    app: FastAPI, client: TestClient, accounts: Accounts
):
    """The harness itself can fail: a document that omits the 404 of a case is caught."""
    document = copy.deepcopy(app.openapi())
    del document["paths"]["/api/cases/{case_id}"]["get"]["responses"]["404"]
    schema = schemathesis.openapi.from_dict(document)
    schema.app = app
    operation = next(
        result.ok()
        for result in schema.get_all_operations()
        if result.ok().path == "/api/cases/{case_id}" and result.ok().method == "get"
    )
    patient = accounts.patient()
    tally = Tally()
    _fuzz(operation, asgi.get_client(app), {"patient": patient.headers}, {}, tally)
    assert tally.requests > 0
    assert any("Undocumented status code" in failure for failure in tally.failures)


def test_nul_characters_are_refused_before_they_reach_the_database(
    client: TestClient, accounts: Accounts
):
    patient = accounts.patient()
    body = {
        "subject": "Back\x00pain",
        "body_region": "spine",
        "clinical_question": "Is this lesion a hemangioma?",
    }
    answer = client.post("/api/cases", json=body, headers=patient.headers)
    assert answer.status_code == 422
    assert answer.json() == {"detail": "subject: must not contain control characters (NUL)."}
    assert client.get("/api/cases", headers=patient.headers).json() == {"items": [], "next": None}
    nested = client.post(
        "/api/cases", json={**body, "subject": "Back pain", "x\x00": 1}, headers=patient.headers
    )
    assert nested.status_code == 422
    query = client.get("/api/cases", params={"status": "draft\x00"}, headers=patient.headers)
    assert query.status_code == 422


@pytest.mark.parametrize("language", ["english", "xx", "e", "ru-RU"])
def test_a_case_language_is_a_supported_one(client: TestClient, accounts: Accounts, language: str):
    """Found by schemathesis on PostgreSQL: the pattern was not enforced (SQLModel ignores
    ``regex=``), and a longer value overflowed the two-letter column (a server error). Only
    the supported languages are accepted (their case is forgiven: ``EN`` is ``en``)."""
    patient = accounts.patient()
    body = {
        "subject": "Back pain",
        "body_region": "spine",
        "clinical_question": "Is this lesion a hemangioma?",
        "language": language,
    }
    answer = client.post("/api/cases", json=body, headers=patient.headers)
    assert answer.status_code == 422 and "language" in answer.json()["detail"]
    assert client.get("/api/cases", headers=patient.headers).json() == {"items": [], "next": None}


def test_an_audit_position_past_any_sequence_number_is_invalid(
    client: TestClient, accounts: Accounts
):
    """Found by schemathesis: a position (then ``before_seq``, now inside the cursor) beyond the
    column's range overflowed in the database driver (SQLite's OverflowError, PostgreSQL's
    DataError): a server error. Such a cursor is one the list never gave out: 400."""
    coordinator = accounts.staff(Role.coordinator)
    for position in (2**63, 73068765309906921582367866880):  # the append id is a BIGINT
        answer = client.get(
            "/api/audit", params={"cursor": encode_cursor([position])}, headers=coordinator.headers
        )
        assert answer.status_code == 400 and "cursor" in answer.json()["detail"]
    last = client.get(
        "/api/audit", params={"cursor": encode_cursor([2**63 - 1])}, headers=coordinator.headers
    )
    assert last.status_code == 200
