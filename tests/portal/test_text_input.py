"""Control characters in any text input answer 422 naming the field, on SQLite and PostgreSQL.

PostgreSQL refuses NUL in text and cannot encode a lone surrogate: before the shared
``portal.inputs`` types these inputs reached the database and answered 500, even before sign-in.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from portal.accounts.models import Role, User
from portal.cases.models import Case
from portal.inputs import SUPPORTED_LANGUAGES
from portal.objects import texts
from tests.fixtures.app import PASSWORD, Accounts, open_case

MARK = "Zyxwvut"
"""Part of every bad value: the answer must never quote it."""

CONTROL = ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\ud800"]
"""NUL, BEL, ESC, DEL, a C1 control (NEL) and a lone surrogate."""


def post_raw(
    client: TestClient, method: str, path: str, body: dict[str, Any], headers: dict[str, str]
) -> Any:
    """Send ``body`` as JSON exactly (lone surrogates as ``\\udxxx`` escapes, as JSON allows)."""
    content = json.dumps(body).encode()
    headers = {**headers, "Content-Type": "application/json"}
    return client.request(method, path, content=content, headers=headers)


def assert_refused(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith(f"{field}:"), detail
    # Pydantic refuses a lone surrogate itself ("not a valid string"); the rest is ours.
    assert "control characters" in detail or "valid string" in detail, detail
    assert MARK not in response.text


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
def test_before_sign_in(client: TestClient, db: Session, char: str):
    registration = {
        "email": "anna@example.org",
        "password": PASSWORD,
        "full_name": f"Anna{char}{MARK}",
    }
    assert_refused(post_raw(client, "POST", "/api/auth/register", registration, {}), "full_name")
    assert db.exec(select(User)).all() == []
    db.commit()
    login = {"email": f"anna{char}{MARK}@example.org", "password": PASSWORD}
    assert_refused(post_raw(client, "POST", "/api/auth/login", login, {}), "email")


def test_sign_in_form_refuses_control_characters(client: TestClient):
    from tests.portal.test_pages import form_token

    body = {"email": f"anna\x00{MARK}@example.org", "password": PASSWORD}
    refused = client.post("/login", data={**body, "csrf_token": form_token(client, "/login")})
    assert refused.status_code == 422 and "email" in refused.text and MARK not in refused.text


Body = Callable[[str], dict[str, Any]]
ROUTES: list[tuple[str, str, str, str, Body]] = [
    # role, method, path ({case} and {question} are random ids), field, body with the bad text
    ("patient", "POST", "/api/cases", "subject", lambda bad: {**CASE, "subject": bad}),
    ("patient", "POST", "/api/cases/{case}/cancel", "reason", lambda bad: {"reason": bad}),
    (
        "patient",
        "POST",
        "/api/cases/{case}/consent",
        "version",
        lambda bad: {"accepted": True, "version": bad},
    ),
    (
        "patient",
        "POST",
        "/api/cases/{case}/questions/{question}/answer",
        "text",
        lambda bad: {"text": bad},
    ),
    ("specialist", "POST", "/api/cases/{case}/questions", "text", lambda bad: {"text": bad}),
    ("specialist", "POST", "/api/cases/{case}/decline", "reason", lambda bad: {"reason": bad}),
    ("specialist", "PUT", "/api/cases/{case}/opinion", "findings", lambda bad: {"findings": bad}),
    (
        "specialist",
        "PUT",
        "/api/cases/{case}/opinion",
        "recommendations.treatment_options",
        lambda bad: {"recommendations": {"treatment_options": bad}},
    ),
    (
        "specialist",
        "PUT",
        "/api/cases/{case}/opinion",
        "answers.0.answer",
        lambda bad: {"answers": [{"question": "Is it benign?", "answer": bad}]},
    ),
    (
        "specialist",
        "POST",
        "/api/cases/{case}/opinion/addenda",
        "text",
        lambda bad: {"text": bad},
    ),
    (
        "specialist",
        "POST",
        "/api/cases/{case}/dicomweb-tokens",
        "label",
        lambda bad: {"label": bad},
    ),
    (
        "coordinator",
        "POST",
        "/api/cases/{case}/assign",
        "reason",
        lambda bad: {"specialist_id": str(uuid.uuid4()), "reason": bad},
    ),
    (
        "coordinator",
        "PATCH",
        "/api/specialists/{case}",
        "credentials",
        lambda bad: {"credentials": bad},
    ),
    (
        "admin",
        "POST",
        "/api/users",
        "full_name",
        lambda bad: {
            "email": "dr.new@example.org",
            "password": PASSWORD,
            "full_name": bad,
            "role": "specialist",
        },
    ),
]
CASE = {
    "subject": "Spinal hemangioma at T11",
    "body_region": "spine",
    "clinical_question": "Is this lesion a typical hemangioma?",
}


def test_every_text_input_of_the_api(client: TestClient, accounts: Accounts):
    callers = {
        "patient": accounts.patient(),
        "specialist": accounts.staff(Role.specialist),
        "coordinator": accounts.staff(Role.coordinator),
        "admin": accounts.staff(Role.admin),
    }
    for role, method, template, field, body in ROUTES:
        path = template.format(case=uuid.uuid4(), question=uuid.uuid4())
        for char in ("\x00", "\ud800"):
            bad = body(f"x{char}{MARK}")
            response = post_raw(client, method, path, bad, callers[role].headers)
            assert_refused(response, field)


def test_single_line_fields_refuse_line_breaks_multi_line_ones_keep_them(
    client: TestClient, accounts: Accounts, db: Session
):
    patient = accounts.patient()
    one_line = client.post(
        "/api/cases", json={**CASE, "subject": f"Two\nlines {MARK}"}, headers=patient.headers
    )
    assert_refused(one_line, "subject")
    question = "First line,\r\nsecond line\tand a tab: is this a hemangioma?"
    case = open_case(client, patient, clinical_question=question, history="Pain.\n\nMRI in May.")
    stored = db.get(Case, uuid.UUID(case["id"]))
    assert stored is not None
    # Stored sealed (docs/encryption.md): opened with the case key, the text is as typed.
    assert (
        texts.for_case(session=db, case_id=stored.id).open(stored, "clinical_question") == question
    )
    db.commit()


@pytest.mark.parametrize("language", ["x" * 100_000, "xx", "e\x00", "english"])
def test_language_must_be_a_supported_one(client: TestClient, accounts: Accounts, language: str):
    registration = {"email": "anna@example.org", "password": PASSWORD, "full_name": "Anna"}
    response = post_raw(
        client, "POST", "/api/auth/register", {**registration, "language": language}, {}
    )
    assert response.status_code == 422 and response.json()["detail"].startswith("language")
    assert language not in response.text
    patient = accounts.patient()
    refused = post_raw(
        client, "POST", "/api/cases", {**CASE, "language": language}, patient.headers
    )
    assert refused.status_code == 422 and refused.json()["detail"].startswith("language")


def test_supported_languages_are_accepted_and_offered(client: TestClient, accounts: Accounts):
    patient = accounts.patient(language="ru")
    for code in SUPPORTED_LANGUAGES:
        case = open_case(client, patient, language=code)
        assert case["language"] == code
    assert open_case(client, patient, language=" DE ")["language"] == "de"
    from tests.portal.test_pages import Page

    page = Page(client.get("/register").text)
    assert set(page.form("/register")["inputs"]) >= {"language"}
    for code in SUPPORTED_LANGUAGES:
        assert f'value="{code}"' in client.get("/register").text
