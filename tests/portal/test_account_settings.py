"""Account settings (page and PATCH /api/me), birth date at registration, and the sign-in
page's second step (the one-time code alone, after a password held server-side)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from portal.accounts import profile
from portal.accounts.models import PendingSignIn, Role, User
from portal.accounts.pages import PENDING_COOKIE
from portal.db import utcnow
from portal.errors import InvalidInput
from tests.fixtures.app import PASSWORD, Accounts
from tests.portal.test_pages import browser_sign_in, check_page, form_token


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("+49 151 23456789", "+4915123456789"),
        ("0049 (151) 234-567-89", "+4915123456789"),
        ("+7 912 345-67-89", "+79123456789"),
        ("", None),
    ],
)
def test_phone_numbers_are_stored_in_e164(typed: str, stored: str | None):
    assert profile.normalize_phone(typed) == stored


@pytest.mark.parametrize("typed", ["0151 23456789", "+49 12", "call me", "+1 555 0100 999 999"])
def test_unusable_phone_numbers_are_refused(typed: str):
    with pytest.raises(InvalidInput, match="country code"):
        profile.normalize_phone(typed)


def test_account_page_saves_language_birth_date_and_phone(
    client: TestClient, accounts: Accounts, db: Session
):
    patient = accounts.patient()
    browser_sign_in(client, patient)
    page = check_page(client.get("/account"))
    form = page.form("/account")
    assert {"language", "date_of_birth", "phone"} <= form["inputs"].keys()
    assert {"/account/two-step", "/password-reset"} <= set(page.links)
    assert "/account" in page.links  # the header's name leads here

    saved = client.post(
        "/account",
        data={
            "csrf_token": form["inputs"]["csrf_token"],
            "language": "ru",
            "date_of_birth": "1980-03-12",
            "phone": "+49 151 23456789",
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303 and saved.headers["location"] == "/account?saved=1"
    user = db.get(User, patient.user_id)
    db.commit()
    assert user is not None
    assert (user.language, user.date_of_birth, user.phone) == (
        "ru",
        date(1980, 3, 12),
        "+4915123456789",
    )
    shown = client.get("/account?saved=1")
    assert (
        'id="account-saved"' in shown.text
        and f'value="{profile.display_phone(user.phone)}"' in shown.text
    )
    assert "Ваши настройки сохранены." in shown.text  # the page now speaks Russian


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("date_of_birth", (date.today() + timedelta(days=1)).isoformat(), "between 1 January 1900"),
        ("date_of_birth", "1899-12-31", "between 1 January 1900"),
        ("date_of_birth", "12.03.1980", "between 1 January 1900"),
        ("phone", "12345", "country code"),
    ],
)
def test_account_page_refuses_bad_values_and_changes_nothing(
    client: TestClient, accounts: Accounts, db: Session, field: str, value: str, message: str
):
    patient = accounts.patient()
    browser_sign_in(client, patient)
    csrf = check_page(client.get("/account")).form("/account")["inputs"]["csrf_token"]
    data = {"csrf_token": csrf, "language": "ru", "date_of_birth": "", "phone": ""} | {field: value}
    refused = client.post("/account", data=data)
    assert refused.status_code == 422 and message in refused.text
    user = db.get(User, patient.user_id)
    db.commit()
    assert user is not None and user.language == "en" and user.date_of_birth is None


def test_patch_me_changes_only_what_is_sent(client: TestClient, accounts: Accounts):
    patient = accounts.patient()
    changed = client.patch(
        "/api/me",
        json={"date_of_birth": "1981-12-03", "phone": "+7 912 345 67 89"},
        headers=patient.headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["phone"] == "+79123456789"
    assert changed.json()["date_of_birth"] == "1981-12-03"
    language = client.patch("/api/me", json={"language": "de"}, headers=patient.headers).json()
    assert (language["language"], language["phone"]) == ("de", "+79123456789")
    cleared = client.patch("/api/me", json={"phone": None}, headers=patient.headers).json()
    assert cleared["phone"] is None and cleared["date_of_birth"] == "1981-12-03"
    future = (date.today() + timedelta(days=3)).isoformat()
    refused = client.patch("/api/me", json={"date_of_birth": future}, headers=patient.headers)
    assert refused.status_code == 422
    bad_phone = client.patch("/api/me", json={"phone": "not a number"}, headers=patient.headers)
    assert bad_phone.status_code == 422 and "country code" in bad_phone.json()["detail"]


def test_registration_asks_for_the_birth_date(client: TestClient, db: Session):
    page = check_page(client.get("/register"))
    assert "date_of_birth" in page.form("/register")["inputs"]
    assert "check that the scans you upload are yours" in client.get("/register").text
    token = form_token(client, "/register")
    created = client.post(
        "/register",
        data={
            "csrf_token": token,
            "full_name": "Анна Иванова",
            "email": "anna.i@example.org",
            "password": PASSWORD,
            "language": "ru",
            "date_of_birth": "1980-03-12",
        },
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    user = db.exec(select(User).where(User.email == "anna.i@example.org")).one()
    db.commit()
    assert user.date_of_birth == date(1980, 3, 12)


# --- the second step of the sign-in page -------------------------------------------------------


def password_step(client: TestClient, email: str, password: str) -> object:
    token = form_token(client, "/login")
    return client.post(
        "/login",
        data={"csrf_token": token, "email": email, "password": password, "next": "/cases"},
        follow_redirects=False,
    )


def test_staff_give_the_code_on_its_own_page_after_the_password(
    client: TestClient, accounts: Accounts, db: Session
):
    coordinator = accounts.staff(Role.coordinator)
    held = password_step(client, coordinator.email, coordinator.password)
    assert held.status_code == 303  # type: ignore[attr-defined]
    assert held.headers["location"] == "/login/code?next=%2Fcases"  # type: ignore[attr-defined]
    assert client.cookies.get(PENDING_COOKIE)
    pending = db.exec(select(PendingSignIn)).one()
    db.commit()
    assert pending.expires_at - pending.created_at == timedelta(minutes=5)
    assert client.cookies.get(PENDING_COOKIE) not in pending.model_dump_json()

    page = client.get("/login/code?next=%2Fcases")
    code_form = check_page(page).form("/login/code")
    assert set(code_form["inputs"]) == {"csrf_token", "next", "otp"}
    assert coordinator.password not in page.text

    wrong = client.post(
        "/login/code",
        data={"csrf_token": code_form["inputs"]["csrf_token"], "otp": "000000", "next": "/cases"},
    )
    assert wrong.status_code == 401 and "not correct" in wrong.text
    assert 'action="/login/code"' in wrong.text  # still only the code is asked for

    done = client.post(
        "/login/code",
        data={
            "csrf_token": code_form["inputs"]["csrf_token"],
            "otp": coordinator.next_otp(),
            "next": "/cases",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/cases"
    assert client.get("/cases").status_code == 200

    # The held password was used up: the code page sends back to the password.
    replay = client.get("/login/code")
    assert replay.status_code == 401 and 'action="/login"' in replay.text


def test_a_held_password_expires(client: TestClient, accounts: Accounts, db: Session):
    specialist = accounts.staff(Role.specialist)
    password_step(client, specialist.email, specialist.password)
    pending = db.exec(select(PendingSignIn)).one()
    pending.expires_at = utcnow() - timedelta(seconds=1)
    db.add(pending)
    db.commit()
    csrf = form_token(client, "/login")
    late = client.post(
        "/login/code", data={"csrf_token": csrf, "otp": specialist.next_otp(), "next": "/"}
    )
    assert late.status_code == 401 and "took too long" in late.text


def test_a_held_password_allows_only_a_few_wrong_codes(
    client: TestClient, accounts: Accounts, db: Session
):
    specialist = accounts.staff(Role.specialist)
    refused = password_step(client, specialist.email, "wrong password 123")
    assert refused.status_code == 401  # type: ignore[attr-defined]
    assert db.exec(select(PendingSignIn)).all() == []  # a wrong password holds nothing
    db.commit()
    password_step(client, specialist.email, specialist.password)
    csrf = form_token(client, "/login")
    statuses = [
        client.post("/login/code", data={"csrf_token": csrf, "otp": "000000"}).status_code
        for _ in range(6)
    ]
    assert statuses[0] == 401
    assert set(statuses) <= {401, 429}
    last = client.post("/login/code", data={"csrf_token": csrf, "otp": specialist.next_otp()})
    assert last.status_code in {401, 429}  # five wrong codes (or the throttle) ended it
