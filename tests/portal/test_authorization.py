"""Every API endpoint probed with every role, anonymously, and with another patient's ids."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from portal.accounts.models import Role
from portal.breakglass.models import BreakGlassGrant
from portal.cases.consent import CURRENT_VERSION
from portal.cases.models import Case, CaseStatus
from portal.db import utcnow
from portal.intake.models import DicomInstance, DicomSeries, DicomStudy
from portal.notifications.models import NotificationKind, OutboxMessage
from reviewers.models import CaseQuestion, Opinion, QuestionKind
from reviewers.treatment.models import TreatmentRequest
from tests.fixtures.app import Account, Accounts, open_case
from tests.portal import samples

ROLES = [
    "owner",
    "other_patient",
    "assigned_specialist",
    "other_specialist",
    "coordinator",
    "admin",
]

# (method, path template) -> expected status per caller; "case" is the owner's case id.
CASE_BODY = {
    "subject": "Second case",
    "body_region": "head",
    "clinical_question": "Is the lesion on my MRI benign?",
}
SEES_CASE = {
    "owner": 200,
    "other_patient": 404,
    "assigned_specialist": 200,
    "other_specialist": 404,
    "coordinator": 200,
    "admin": 200,
}
# A case's content (files, images, records, DICOMweb, clinical text) before it is submitted:
# its owner's alone. Staff who see the case are told so (403), the rest find no case (404).
DRAFT_CONTENT = {
    "owner": 200,
    "other_patient": 404,
    "assigned_specialist": 403,
    "other_specialist": 404,
    "coordinator": 403,
    "admin": 403,
}
# Once submitted: the specialists and coordinators too; admins only through break-glass.
SUBMITTED_CONTENT = {
    "owner": 200,
    "other_patient": 404,
    "assigned_specialist": 200,
    "other_specialist": 404,
    "coordinator": 200,
    "admin": 403,
}
STAFF_ONLY = {
    "owner": 403,
    "other_patient": 403,
    "assigned_specialist": 403,
    "other_specialist": 403,
    "coordinator": 200,
    "admin": 200,
}
STORES = {
    "owner": 415,
    "other_patient": 404,
    "assigned_specialist": 403,
    "other_specialist": 404,
    "coordinator": 403,
    "admin": 403,
}
MATRIX: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/api/me"): dict.fromkeys(ROLES, 200),
    ("GET", "/api/auth/csrf"): dict.fromkeys(ROLES, 200),
    ("POST", "/api/cases"): {
        "owner": 201,
        "other_patient": 201,
        "assigned_specialist": 403,
        "other_specialist": 403,
        "coordinator": 403,
        "admin": 403,
    },
    ("GET", "/api/cases"): dict.fromkeys(ROLES, 200),
    ("GET", "/api/cases/{case_id}"): {
        "owner": 200,
        "other_patient": 404,
        "assigned_specialist": 200,
        "other_specialist": 404,
        "coordinator": 200,
        "admin": 200,
    },
    ("POST", "/api/cases/{case_id}/submit"): {
        "owner": 409,
        "other_patient": 404,
        "assigned_specialist": 403,
        "other_specialist": 404,
        "coordinator": 403,
        "admin": 403,
    },
    ("POST", "/api/cases/{case_id}/consent"): {
        "owner": 201,
        "other_patient": 404,
        "assigned_specialist": 403,
        "other_specialist": 404,
        "coordinator": 403,
        "admin": 403,
    },
    ("GET", "/api/consent"): dict.fromkeys(ROLES, 200),
    ("POST", "/api/cases/{case_id}/files"): {
        "owner": 200,
        "other_patient": 404,
        "assigned_specialist": 403,
        "other_specialist": 404,
        "coordinator": 403,
        "admin": 403,
    },
    ("GET", "/api/cases/{case_id}/files"): DRAFT_CONTENT,
    ("GET", "/api/cases/{case_id}/files/{file_id}/content"): DRAFT_CONTENT,
    ("GET", "/api/cases/{case_id}/studies"): DRAFT_CONTENT,
    ("GET", "/api/cases/{case_id}/series/{series_id}"): DRAFT_CONTENT,
    ("GET", "/api/cases/{case_id}/series/{series_id}/thumbnail"): DRAFT_CONTENT,
    ("GET", "/api/cases/{case_id}/instances/{instance_id}/frames/{frame}"): DRAFT_CONTENT,
    ("GET", "/api/cases/{case_id}/records/{file_id}"): DRAFT_CONTENT,
    ("GET", "/api/cases/{case_id}/records/{file_id}/pages/{page}"): DRAFT_CONTENT,
    ("GET", "/api/audit"): {
        "owner": 403,
        "other_patient": 403,
        "assigned_specialist": 403,
        "other_specialist": 403,
        "coordinator": 200,
        "admin": 200,
    },
    ("GET", "/api/users"): {
        "owner": 403,
        "other_patient": 403,
        "assigned_specialist": 403,
        "other_specialist": 403,
        "coordinator": 403,
        "admin": 200,
    },
    ("POST", "/api/users"): {
        "owner": 403,
        "other_patient": 403,
        "assigned_specialist": 403,
        "other_specialist": 403,
        "coordinator": 403,
        "admin": 201,
    },
    # The review workflow, on a draft case: whoever may act at all gets 409 (wrong state),
    # whoever never may gets 403, whoever cannot see the case 404.
    ("POST", "/api/cases/{case_id}/accept"): {
        "owner": 403,
        "other_patient": 404,
        "assigned_specialist": 409,
        "other_specialist": 404,
        "coordinator": 403,
        "admin": 403,
    },
    ("POST", "/api/cases/{case_id}/decline"): {
        "owner": 403,
        "other_patient": 404,
        "assigned_specialist": 409,
        "other_specialist": 404,
        "coordinator": 403,
        "admin": 403,
    },
    ("POST", "/api/cases/{case_id}/assign"): {
        "owner": 403,
        "other_patient": 403,
        "assigned_specialist": 403,
        "other_specialist": 403,
        "coordinator": 409,
        "admin": 409,
    },
    ("GET", "/api/cases/{case_id}/assignments"): STAFF_ONLY,
    ("GET", "/api/cases/{case_id}/suggestions"): STAFF_ONLY,
    ("GET", "/api/cases/{case_id}/questions"): DRAFT_CONTENT,
    ("POST", "/api/cases/{case_id}/questions"): {
        "owner": 409,
        "other_patient": 404,
        "assigned_specialist": 409,
        "other_specialist": 404,
        "coordinator": 403,
        "admin": 403,
    },
    ("POST", "/api/cases/{case_id}/questions/{question_id}/answer"): {
        "owner": 200,
        "other_patient": 404,
        "assigned_specialist": 403,
        "other_specialist": 404,
        "coordinator": 403,
        "admin": 403,
    },
    ("PUT", "/api/cases/{case_id}/opinion"): {
        "owner": 403,
        "other_patient": 404,
        "assigned_specialist": 409,
        "other_specialist": 404,
        "coordinator": 403,
        "admin": 403,
    },
    # An opinion is content: on a draft (the opinion is planted by the fixture) nobody reads it,
    # the patient because it is not delivered, staff because the case is not submitted.
    ("GET", "/api/cases/{case_id}/opinion"): dict.fromkeys(ROLES, 404),
    ("POST", "/api/cases/{case_id}/opinion/sign"): {
        "owner": 403,
        "other_patient": 404,
        "assigned_specialist": 409,
        "other_specialist": 404,
        "coordinator": 403,
        "admin": 403,
    },
    ("GET", "/api/cases/{case_id}/opinion.pdf"): dict.fromkeys(ROLES, 404),
    ("POST", "/api/cases/{case_id}/opinion/addenda"): {
        "owner": 403,
        "other_patient": 404,
        "assigned_specialist": 409,
        "other_specialist": 404,
        "coordinator": 403,
        "admin": 403,
    },
    ("POST", "/api/cases/{case_id}/close"): {
        "owner": 409,
        "other_patient": 404,
        "assigned_specialist": 403,
        "other_specialist": 404,
        "coordinator": 409,
        "admin": 409,
    },
    # DICOMweb: stored by the owner only (here with a body of the wrong type, so the owner
    # gets 415 once allowed); read by whoever sees the case (DICOMWEB_READS, below).
    ("POST", "/api/cases/{case_id}/dicomweb/studies"): STORES,
    ("POST", "/api/cases/{case_id}/dicomweb/studies/{study}"): STORES,
    # A token reads images: on a draft only the owner may make one.
    ("POST", "/api/cases/{case_id}/dicomweb-tokens"): {
        "owner": 201,
        "other_patient": 404,
        "assigned_specialist": 403,
        "other_specialist": 404,
        "coordinator": 403,
        "admin": 403,
    },
    ("GET", "/api/cases/{case_id}/dicomweb-tokens"): {
        "owner": 200,
        "other_patient": 404,
        "assigned_specialist": 200,
        "other_specialist": 404,
        "coordinator": 200,
        "admin": 403,
    },
    # The owner's own token: theirs to revoke, and any coordinator's; nobody else's to see.
    ("DELETE", "/api/cases/{case_id}/dicomweb-tokens/{token_id}"): {
        "owner": 204,
        "other_patient": 404,
        "assigned_specialist": 404,
        "other_specialist": 404,
        "coordinator": 204,
        "admin": 403,
    },
    ("GET", "/api/specialists"): STAFF_ONLY,
    ("GET", "/api/specialists/{specialist_id}"): STAFF_ONLY,
    ("PATCH", "/api/specialists/{specialist_id}"): STAFF_ONLY,
    # Last: the owner's cancellation ends the draft, so staff then find it already cancelled.
    ("POST", "/api/cases/{case_id}/cancel"): {
        "owner": 200,
        "other_patient": 404,
        "assigned_specialist": 403,
        "other_specialist": 404,
        "coordinator": 409,
        "admin": 409,
    },
}
DICOMWEB = "/api/cases/{case_id}/dicomweb"
STUDY = DICOMWEB + "/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{instance}"
DICOMWEB_READS = [
    *(DICOMWEB + level for level in ("/studies", "/series", "/instances")),
    STUDY + "/series",
    STUDY + "/instances",
    SERIES + "/instances",
    STUDY,
    SERIES,
    INSTANCE,
    *(path + "/metadata" for path in (STUDY, SERIES, INSTANCE)),
    INSTANCE + "/frames/{frame_list}",
    INSTANCE + "/bulkdata/{tag}",
    INSTANCE + "/rendered",
    INSTANCE + "/frames/{frame_list}/rendered",
    INSTANCE + "/thumbnail",
    SERIES + "/thumbnail",
]
MATRIX.update({("GET", path): DRAFT_CONTENT for path in DICOMWEB_READS})
MATRIX.update(
    {
        # The treatment guide is for everyone signed in; a case's plan requests are its content
        # (the planted request is on a draft case: a plan is requested only after the opinion).
        # Before the break-glass request below: the admin's grant would open them.
        ("GET", "/api/treatment/guide"): dict.fromkeys(ROLES, 200),
        ("GET", "/api/cases/{case_id}/treatment-requests"): DRAFT_CONTENT,
        ("GET", "/api/treatment-requests/{request_id}"): DRAFT_CONTENT,
        ("POST", "/api/cases/{case_id}/treatment-requests"): {
            "owner": 409,
            "other_patient": 404,
            "assigned_specialist": 403,
            "other_specialist": 404,
            "coordinator": 403,
            "admin": 403,
        },
        ("GET", "/api/treatment-requests"): {
            "owner": 403,
            "other_patient": 403,
            "assigned_specialist": 403,
            "other_specialist": 403,
            "coordinator": 200,
            "admin": 403,
        },
        ("POST", "/api/treatment-requests/{request_id}/status"): {
            "owner": 403,
            "other_patient": 404,
            "assigned_specialist": 403,
            "other_specialist": 404,
            "coordinator": 403,
            "admin": 403,
        },
    }
)
MATRIX.update(
    {
        # After the DICOMweb reads: the admin's grant would open them.
        ("POST", "/api/cases/{case_id}/break-glass"): {
            "owner": 403,
            "other_patient": 403,
            "assigned_specialist": 403,
            "other_specialist": 403,
            "coordinator": 403,
            "admin": 201,
        },
        ("GET", "/api/cases/{case_id}/break-glass"): {
            "owner": 200,
            "other_patient": 404,
            "assigned_specialist": 403,
            "other_specialist": 404,
            "coordinator": 200,
            "admin": 200,
        },
    }
)
MATRIX.update(
    {
        # FHIR: the delivered opinion as a document (not yet on this draft: the owner gets 409;
        # content of a draft is the owner's alone); the audit trail as AuditEvents.
        ("GET", "/api/cases/{case_id}/fhir"): {
            "owner": 409,
            "other_patient": 404,
            "assigned_specialist": 403,
            "other_specialist": 404,
            "coordinator": 403,
            "admin": 403,
        },
        ("GET", "/api/audit/fhir"): {
            "owner": 403,
            "other_patient": 403,
            "assigned_specialist": 403,
            "other_specialist": 403,
            "coordinator": 200,
            "admin": 200,
        },
        # Share links for the patient's own doctor: the patient's alone, once the opinion is
        # delivered (it is not on this draft case).
        ("POST", "/api/cases/{case_id}/share-links"): {
            "owner": 409,
            "other_patient": 404,
            "assigned_specialist": 403,
            "other_specialist": 404,
            "coordinator": 403,
            "admin": 403,
        },
        ("GET", "/api/cases/{case_id}/share-links"): {
            "owner": 200,
            "other_patient": 404,
            "assigned_specialist": 403,
            "other_specialist": 404,
            "coordinator": 403,
            "admin": 403,
        },
        ("DELETE", "/api/cases/{case_id}/share-links/{link_id}"): {
            "owner": 404,
            "other_patient": 404,
            "assigned_specialist": 403,
            "other_specialist": 404,
            "coordinator": 403,
            "admin": 403,
        },
    }
)
CONTENT_READS = [
    path
    for (method, path), expected in MATRIX.items()
    if method == "GET" and expected is DRAFT_CONTENT
]
# Reached without an account, or acting on the caller's own session: probed in their own tests.
PUBLIC_OR_SELF = {
    # Resumable uploads belong to their creator alone: probed in test_tus.py.
    ("OPTIONS", "/api/uploads"),
    ("POST", "/api/uploads"),
    ("HEAD", "/api/uploads/{upload_id}"),
    ("PATCH", "/api/uploads/{upload_id}"),
    ("DELETE", "/api/uploads/{upload_id}"),
    ("GET", "/api/uploads/{upload_id}"),
    ("POST", "/api/auth/register"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/logout"),
    ("POST", "/api/auth/totp/enroll"),
    ("POST", "/api/auth/totp/confirm"),
    ("POST", "/api/auth/totp/disable"),
    # The caller's own settings, and the password reset (anyone): test_account_settings.py,
    # test_password_reset.py.
    ("PATCH", "/api/me"),
    ("POST", "/api/auth/password-reset"),
    ("POST", "/api/auth/password-reset/confirm"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
}


def api_routes(app: FastAPI) -> set[tuple[str, str]]:
    """Every JSON API route, also inside included routers (FastAPI may nest them)."""
    found: set[tuple[str, str]] = set()

    def walk(routes: Any) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                found.update((method, route.path) for method in route.methods)
            elif (inner := getattr(route, "original_router", None)) is not None:
                walk(inner.routes)

    walk(app.routes)
    return {(method, path) for method, path in found if path.startswith("/api/")}


def test_every_route_is_in_the_matrix(app: FastAPI):
    routes = api_routes(app)
    assert ("GET", "/api/me") in routes and ("POST", "/api/cases/{case_id}/accept") in routes
    unprobed = routes - set(MATRIX) - PUBLIC_OR_SELF
    assert not unprobed, f"add these routes to the authorization matrix: {sorted(unprobed)}"


@pytest.fixture
def cast(client: TestClient, accounts: Accounts, db: Session) -> dict[str, Any]:
    people: dict[str, Account] = {
        "owner": accounts.patient(),
        "other_patient": accounts.patient(),
        "assigned_specialist": accounts.staff(Role.specialist),
        "other_specialist": accounts.staff(Role.specialist),
        "coordinator": accounts.staff(Role.coordinator),
        "admin": accounts.staff(Role.admin),
    }
    case = open_case(client, people["owner"])
    uploaded = client.post(
        f"/api/cases/{case['id']}/files",
        files=[("files", ("ct.dcm", samples.dicom(), "application/dicom"))],
        headers=people["owner"].headers,
    )
    file_id = uploaded.json()["accepted"][0]["id"]
    record = client.post(
        f"/api/cases/{case['id']}/files",
        files=[("files", ("report.pdf", samples.pdf(1), "application/pdf"))],
        headers=people["owner"].headers,
    )
    instance = db.exec(
        select(DicomInstance).where(DicomInstance.file_id == uuid.UUID(file_id))
    ).one()
    stored = db.get(Case, uuid.UUID(case["id"]))
    assert stored is not None
    stored.assigned_specialist_id = people["assigned_specialist"].user_id
    question = CaseQuestion(
        case_id=stored.id,
        kind=QuestionKind.clarification,
        asked_by=people["assigned_specialist"].user_id,
        text="Do you have the earlier MRI?",
    )
    opinion = Opinion(case_id=stored.id, author_id=people["assigned_specialist"].user_id)
    soon = utcnow().date() + timedelta(days=30)
    plan = TreatmentRequest(
        case_id=stored.id,
        patient_id=people["owner"].user_id,
        options=["vertebroplasty"],
        travel_from=soon,
        travel_to=soon + timedelta(days=7),
    )
    db.add_all([stored, question, opinion, plan])
    db.commit()
    token = client.post(
        f"/api/cases/{case['id']}/dicomweb-tokens", json={}, headers=people["owner"].headers
    )
    series = db.get(DicomSeries, instance.series_id)
    study = db.get(DicomStudy, series.study_id) if series else None
    assert series is not None and study is not None
    db.commit()  # end the read: on SQLite it holds the write lock the requests need
    return {
        "people": people,
        "case_id": case["id"],
        "token_id": token.json()["id"],
        "study": study.study_instance_uid,
        "series": series.series_instance_uid,
        "instance": instance.sop_instance_uid,
        "file_id": file_id,
        "question_id": question.id,
        "specialist_id": people["assigned_specialist"].user_id,
        "series_id": instance.series_id,
        "instance_id": instance.id,
        "record_id": record.json()["accepted"][0]["id"],
        "request_id": plan.id,
    }


TRAVEL = [(utcnow().date() + timedelta(days=days)).isoformat() for days in (30, 37)]


def _call(
    client: TestClient, method: str, path: str, headers: dict[str, str] | None, n: int
) -> int:
    if path.endswith("/files") and method == "POST":
        files = [("files", ("x.png", samples.png(), "image/png"))]
        return client.post(path, files=files, headers=headers).status_code
    body: dict[str, Any] | None = None
    if path == "/api/cases":
        body = CASE_BODY
    if path.endswith("/consent"):
        body = {"accepted": True, "version": CURRENT_VERSION}
    bodies = {
        "/decline": {"reason": "On leave this week."},
        "/assign": {"specialist_id": str(uuid.uuid4())},
        "/questions": {"text": "Do you have the earlier MRI?"},
        "/answer": {"text": "Yes, from 2024."},
        "/opinion": {"summary": "A typical vertebral hemangioma."},
        "/sign": {"password": "wrong", "otp": "000000"},
        "/addenda": {"text": "A correction."},
        "/cancel": {"reason": "No longer needed."},
        "/break-glass": {"reason": "Support request 4711: the patient cannot open a file."},
        "/treatment-requests": {"travel_from": TRAVEL[0], "travel_to": TRAVEL[1]},
        "/status": {"status": "answered", "answer": "A plan at the clinic you chose."},
    }
    for suffix, suffix_body in bodies.items():
        if path.endswith(suffix):
            body = suffix_body
    if method == "PATCH":
        body = {"available": True}
    if path == "/api/users":
        body = {
            "email": f"new{n}@example.org",
            "password": "a long enough passphrase 7",
            "full_name": "New Person",
            "role": "coordinator",
        }
    return client.request(
        method, path, json=body if method in {"POST", "PUT", "PATCH"} else None, headers=headers
    ).status_code


def _path(template: str, cast: dict[str, Any]) -> str:
    return template.format(
        case_id=cast["case_id"],
        file_id=cast["record_id"] if "/records/" in template else cast["file_id"],
        question_id=cast["question_id"],
        specialist_id=cast["specialist_id"],
        series_id=cast["series_id"],
        instance_id=cast["instance_id"],
        frame=1,
        page=1,
        study=cast["study"],
        series=cast["series"],
        instance=cast["instance"],
        frame_list="1",
        tag="7FE00010",
        token_id=cast["token_id"],
        request_id=cast["request_id"],
        link_id=uuid.UUID(int=7),
    )


def test_matrix(client: TestClient, cast: dict[str, Any]):
    failures = []
    for n, ((method, template), expected) in enumerate(MATRIX.items()):
        path = _path(template, cast)
        anonymous = _call(client, method, path, None, n)
        if anonymous != 401:
            failures.append(f"anonymous {method} {template}: {anonymous}")
        for role in ROLES:
            got = _call(
                client, method, path, cast["people"][role].headers, n * 10 + ROLES.index(role)
            )
            if got != expected[role]:
                failures.append(f"{role} {method} {template}: expected {expected[role]}, got {got}")
    assert not failures, "\n".join(failures)


def _content_failures(
    client: TestClient, cast: dict[str, Any], expected: dict[str, int]
) -> list[str]:
    failures = []
    for template in CONTENT_READS:
        for role in ROLES:
            got = client.get(_path(template, cast), headers=cast["people"][role].headers)
            if got.status_code != expected[role]:
                failures.append(f"{role} {template}: expected {expected[role]}, got {got}")
    return failures


def _submit(db: Session, cast: dict[str, Any]) -> None:
    stored = db.get(Case, uuid.UUID(cast["case_id"]))
    assert stored is not None
    stored.status, stored.submitted_at = CaseStatus.in_review, utcnow()
    db.add(stored)
    db.commit()


def test_content_opens_to_staff_once_the_case_is_submitted(
    client: TestClient, cast: dict[str, Any], db: Session
):
    _submit(db, cast)
    failures = _content_failures(client, cast, SUBMITTED_CONTENT)
    assert not failures, "\n".join(failures)


def test_staff_read_a_draft_without_its_clinical_text(client: TestClient, cast: dict[str, Any]):
    people, path = cast["people"], f"/api/cases/{cast['case_id']}"
    owners = client.get(path, headers=people["owner"].headers).json()
    assert owners["clinical_question"]
    for role in ("coordinator", "admin", "assigned_specialist"):
        seen = client.get(path, headers=people[role].headers)
        assert seen.status_code == 200, role
        case = seen.json()
        assert case["clinical_question"] is None and case["history"] is None, role
        assert case["status"] == "draft" and case["reference"] == owners["reference"], role


BREAK_GLASS_REASON = "Support request 4711: the patient cannot open their report."


def test_break_glass_opens_content_to_that_admin_for_a_while(
    client: TestClient, cast: dict[str, Any], accounts: Accounts, db: Session
):
    people, case_id = cast["people"], cast["case_id"]
    admin, other_admin = people["admin"], accounts.staff(Role.admin)
    content = f"/api/cases/{case_id}/files/{cast['file_id']}/content"
    refused = client.get(content, headers=admin.headers)
    assert refused.status_code == 403 and "break-glass" in refused.json()["detail"]

    opened = client.post(
        f"/api/cases/{case_id}/break-glass",
        json={"reason": BREAK_GLASS_REASON},
        headers=admin.headers,
    )
    assert opened.status_code == 201, opened.text
    grant = opened.json()
    assert grant["reason"] == BREAK_GLASS_REASON and grant["active"] is True

    failures = _content_failures(
        client, cast, {**DRAFT_CONTENT, "admin": 200}
    )  # the draft's content, to this admin only
    assert not failures, "\n".join(failures)
    assert client.get(content, headers=other_admin.headers).status_code == 403

    # Audited with the reason, shown to coordinators, and the patient is told.
    trail = client.get(
        f"/api/audit?case_id={case_id}&limit=500", headers=people["coordinator"].headers
    )
    glass = [event for event in trail.json()["items"] if event["action"] == "case.break_glass"]
    assert [(e["actor_id"], e["details"]["reason"]) for e in glass] == [
        (str(admin.user_id), BREAK_GLASS_REASON)
    ]
    for who in ("coordinator", "owner"):
        listed = client.get(f"/api/cases/{case_id}/break-glass", headers=people[who].headers)
        assert [g["id"] for g in listed.json()] == [grant["id"]], who
    told = db.exec(
        select(OutboxMessage).where(
            OutboxMessage.case_id == uuid.UUID(case_id),
            OutboxMessage.kind == NotificationKind.break_glass,
        )
    ).all()
    assert [m.recipient_id for m in told] == [people["owner"].user_id]
    assert BREAK_GLASS_REASON not in told[0].body_text
    db.commit()

    # Once the grant runs out, the content closes again.
    row = db.get(BreakGlassGrant, uuid.UUID(grant["id"]))
    assert row is not None
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.add(row)
    db.commit()
    assert client.get(content, headers=admin.headers).status_code == 403


@pytest.mark.parametrize("reason", [None, "", "just looking", " " * 40, "x" * 2001])
def test_break_glass_needs_a_reason(
    client: TestClient, cast: dict[str, Any], db: Session, reason: str | None
):
    admin = cast["people"]["admin"]
    body = {} if reason is None else {"reason": reason}
    answer = client.post(
        f"/api/cases/{cast['case_id']}/break-glass", json=body, headers=admin.headers
    )
    assert answer.status_code == 422 and "reason" in answer.json()["detail"]
    assert db.exec(select(BreakGlassGrant)).all() == []
    db.commit()  # end the read: on SQLite it holds the lock the request's audit record needs
    content = f"/api/cases/{cast['case_id']}/files/{cast['file_id']}/content"
    assert client.get(content, headers=admin.headers).status_code == 403


def test_unknown_case_and_hidden_case_answer_identically(client: TestClient, cast: dict[str, Any]):
    other = cast["people"]["other_patient"]
    hidden = client.get(f"/api/cases/{cast['case_id']}", headers=other.headers)
    missing = client.get(f"/api/cases/{uuid.uuid4()}", headers=other.headers)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json() == {"detail": "Case not found."}


def test_case_lists_show_only_what_each_role_may_see(client: TestClient, cast: dict[str, Any]):
    people = cast["people"]
    expected = {
        "owner": [cast["case_id"]],
        "other_patient": [],
        "assigned_specialist": [cast["case_id"]],
        "other_specialist": [],
        "coordinator": [cast["case_id"]],
        "admin": [cast["case_id"]],
    }
    for role, ids in expected.items():
        listed = client.get("/api/cases", headers=people[role].headers).json()["items"]
        assert [case["id"] for case in listed] == ids, role


def test_malformed_ids_are_rejected_without_a_server_error(
    client: TestClient, cast: dict[str, Any]
):
    owner = cast["people"]["owner"]
    for bad in ("not-a-uuid", "1 OR 1=1", "%27%3B--"):
        response = client.get(f"/api/cases/{bad}", headers=owner.headers)
        assert response.status_code == 422, bad
        assert "case_id" in response.json()["detail"]


def test_forged_and_garbage_tokens_are_refused(client: TestClient, cast: dict[str, Any]):
    for header in ("Bearer sop_forged", "Bearer ", "Basic abc", "Bearer " + "x" * 5000):
        assert client.get("/api/me", headers={"Authorization": header}).status_code == 401
