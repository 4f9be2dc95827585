"""Registration, sign-in, sessions, throttling and sign-out through the JSON API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from portal.accounts.models import AuthSession, LoginFailure, RegistrationReceived, Role, User
from portal.accounts.service import hash_token
from portal.audit.models import AuditEvent
from portal.db import utcnow
from portal.notifications.models import NotificationKind, OutboxMessage
from tests.fixtures.app import PASSWORD, Accounts
from tests.fixtures.logs import SensitiveValues

RECEIVED = RegistrationReceived().model_dump()


def register(client: TestClient, **overrides: str):
    body = {"email": "anna@example.org", "password": PASSWORD, "full_name": "Anna Petrova"}
    body.update(overrides)
    return client.post("/api/auth/register", json=body)


def test_register_login_me_logout_then_token_is_refused(
    client: TestClient, sensitive: SensitiveValues
):
    sensitive.add("Anna Petrova", "anna@example.org")
    created = register(client, language="ru")
    assert created.status_code == 202 and created.json() == RECEIVED

    login = client.post(
        "/api/auth/login", json={"email": "Anna@Example.org ", "password": PASSWORD}
    )
    assert login.status_code == 200
    body = login.json()
    sensitive.add(body["access_token"])
    assert body["token_type"] == "bearer" and body["role"] == "patient"
    headers = {"Authorization": f"Bearer {body['access_token']}"}

    me = client.get("/api/me", headers=headers)
    assert me.status_code == 200
    assert me.json() == {
        "id": me.json()["id"],
        "email": "anna@example.org",
        "full_name": "Anna Petrova",
        "role": "patient",
        "language": "ru",
        "totp_enabled": False,
        "date_of_birth": None,
        "phone": None,
    }
    assert client.post("/api/auth/logout", headers=headers).status_code == 204
    refused = client.get("/api/me", headers=headers)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "Your session has ended. Sign in again."


def test_tokens_are_stored_only_as_hashes(client: TestClient, db: Session):
    register(client)
    token = client.post(
        "/api/auth/login", json={"email": "anna@example.org", "password": PASSWORD}
    ).json()["access_token"]
    stored = db.exec(select(AuthSession)).one()
    assert stored.token_hash == hash_token(token)
    assert token not in stored.model_dump_json()
    user = db.exec(select(User)).one()
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-pass1", "at least 12 characters"),
        ("password1234", "too common"),
        ("qwertyuiop123", "too common"),
        ("aaaaaaaaaaaaaaa", "too few characters"),
        ("anna@example.org", "e-mail address or name"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(
    client: TestClient, db: Session, password: str, reason: str
):
    response = register(client, password=password)
    assert response.status_code == 422
    assert reason in response.json()["detail"]
    assert db.exec(select(User)).all() == []


def test_malformed_registration_gets_a_readable_message(client: TestClient):
    missing = client.post("/api/auth/register", json={"email": "x@example.org"})
    assert missing.status_code == 422
    assert "password is required" in missing.json()["detail"]
    bad_email = register(client, email="not-an-address")
    assert bad_email.status_code == 422 and bad_email.json()["detail"].startswith("email:")
    not_json = client.post(
        "/api/auth/register", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 422
    assert not_json.json() == {"detail": "The request body is not valid JSON."}


def test_a_known_address_answers_like_a_new_one_and_its_owner_gets_an_e_mail(
    client: TestClient, db: Session, sensitive: SensitiveValues
):
    """Registration does not tell a stranger which addresses have accounts (it used to: 409)."""
    sensitive.add("Anna Petrova", "anna@example.org", "Mallory Imposter")
    sensitive.add("another long passphrase 7")
    new = register(client)
    again = register(
        client,
        email="ANNA@example.org",
        full_name="Mallory Imposter",
        password="another long passphrase 7",
    )
    assert new.status_code == again.status_code == 202
    assert new.json() == again.json() == RECEIVED
    assert new.headers.keys() - {"x-request-id", "date"} == again.headers.keys() - {
        "x-request-id",
        "date",
    }

    user = db.exec(select(User)).one()  # nothing was created or changed
    assert user.full_name == "Anna Petrova"
    mails = db.exec(select(OutboxMessage)).all()
    assert [(m.kind, m.to_address, m.case_id) for m in mails] == [
        (NotificationKind.registration_attempt, "anna@example.org", None)
    ]
    assert "Someone tried to create a new account" in mails[0].body_text
    assert "Mallory" not in mails[0].body_text
    db.commit()  # on SQLite an open read holds the lock the sign-in below needs
    owner = {"email": "anna@example.org", "password": PASSWORD}
    assert client.post("/api/auth/login", json=owner).status_code == 200
    imposter = {"email": "anna@example.org", "password": "another long passphrase 7"}
    assert client.post("/api/auth/login", json=imposter).status_code == 401


def test_oversized_body_is_refused_before_parsing(client: TestClient):
    response = register(client, full_name="x" * (2 * 1024 * 1024))
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]


def age_failures(db: Session, seconds: float) -> None:
    """Move every recorded failure ``seconds`` into the past."""
    for failure in db.exec(select(LoginFailure)).all():
        failure.at = failure.at - timedelta(seconds=seconds)
        db.add(failure)
    db.commit()


def test_failures_past_five_make_the_client_wait_longer_each_time(client: TestClient, db: Session):
    """Growing delays, not a 15-minute lock (the old rule let anyone lock out any account)."""
    register(client)
    wrong = {"email": "anna@example.org", "password": "wrong password 1"}
    for _ in range(5):
        assert client.post("/api/auth/login", json=wrong).status_code == 401
    throttled = client.post(
        "/api/auth/login", json={"email": "anna@example.org", "password": PASSWORD}
    )
    assert throttled.status_code == 429
    retry_after = int(throttled.headers["Retry-After"])
    assert 25 <= retry_after <= 30
    assert "Too many failed sign-in attempts" in throttled.json()["detail"]
    age_failures(db, 31)
    assert client.post("/api/auth/login", json=wrong).status_code == 401
    doubled = client.post("/api/auth/login", json=wrong)
    assert doubled.status_code == 429 and 55 <= int(doubled.headers["Retry-After"]) <= 60

    failures = db.exec(select(AuditEvent).where(AuditEvent.action == "auth.login")).all()
    assert [e.outcome for e in failures] == ["failure"] * 5 + ["throttled", "failure", "throttled"]
    assert all("wrong password" not in e.details and PASSWORD not in e.details for e in failures)
    assert failures[0].details == '{"reason":"bad_password"}'


def test_unknown_email_fails_like_a_wrong_password(client: TestClient):
    register(client)
    unknown = client.post(
        "/api/auth/login", json={"email": "nobody@example.org", "password": PASSWORD}
    )
    wrong = client.post(
        "/api/auth/login", json={"email": "anna@example.org", "password": "not the password"}
    )
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()


def test_throttle_window_expires(client: TestClient, db: Session):
    register(client)
    for _ in range(5):
        client.post(
            "/api/auth/login", json={"email": "anna@example.org", "password": "wrong password 1"}
        )
    for failure in db.exec(select(LoginFailure)).all():
        failure.at = utcnow() - timedelta(minutes=61)
        db.add(failure)
    db.commit()
    assert (
        client.post(
            "/api/auth/login", json={"email": "anna@example.org", "password": PASSWORD}
        ).status_code
        == 200
    )


def test_idle_timeout_and_absolute_lifetime(client: TestClient, accounts: Accounts, db: Session):
    idle = accounts.patient()
    stored = db.exec(
        select(AuthSession).where(AuthSession.token_hash == hash_token(idle.token or ""))
    ).one()
    stored.last_seen_at = utcnow() - timedelta(minutes=31)
    db.add(stored)
    db.commit()
    assert client.get("/api/me", headers=idle.headers).status_code == 401

    old = accounts.sign_in(idle)
    stored = db.exec(
        select(AuthSession).where(AuthSession.token_hash == hash_token(old.token or ""))
    ).one()
    stored.expires_at = utcnow() - timedelta(seconds=1)
    db.add(stored)
    db.commit()
    assert client.get("/api/me", headers=old.headers).status_code == 401


def test_active_use_extends_the_idle_window(client: TestClient, accounts: Accounts, db: Session):
    patient = accounts.patient()
    stored = db.exec(
        select(AuthSession).where(AuthSession.token_hash == hash_token(patient.token or ""))
    ).one()
    stored.last_seen_at = utcnow() - timedelta(minutes=29)
    db.add(stored)
    db.commit()
    assert client.get("/api/me", headers=patient.headers).status_code == 200
    db.refresh(stored)
    assert utcnow() - stored.last_seen_at < timedelta(minutes=1)


def test_session_cookie_flags(client: TestClient):
    register(client)
    login = client.post("/api/auth/login", json={"email": "anna@example.org", "password": PASSWORD})
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # development; production is tested in test_settings


def test_admin_creates_staff_others_may_not(client: TestClient, accounts: Accounts):
    admin = accounts.staff(Role.admin)
    body = {
        "email": "dr.ivanov@example.org",
        "password": PASSWORD,
        "full_name": "Dr Ivanov",
        "role": "specialist",
    }
    for role in (Role.coordinator, Role.specialist):
        other = accounts.staff(role)
        assert client.post("/api/users", json=body, headers=other.headers).status_code == 403
    patient = accounts.patient()
    assert client.post("/api/users", json=body, headers=patient.headers).status_code == 403
    created = client.post("/api/users", json=body, headers=admin.headers)
    assert created.status_code == 201 and created.json()["role"] == "specialist"
    listed = client.get("/api/users?role=specialist", headers=admin.headers).json()
    assert "dr.ivanov@example.org" in [u["email"] for u in listed]


def test_registration_can_never_create_staff(client: TestClient, db: Session):
    response = register(client, role="admin")
    assert response.status_code == 202
    assert db.exec(select(User)).one().role == Role.patient


def test_a_strangers_failures_only_delay_the_owner_briefly(
    client: TestClient, app: FastAPI, db: Session
):
    register(client)
    stranger = TestClient(app, client=("203.0.113.9", 40000))
    owner = TestClient(app, client=("198.51.100.7", 40000))
    wrong = {"email": "anna@example.org", "password": "wrong password 1"}
    right = {"email": "anna@example.org", "password": PASSWORD}
    for _ in range(5):
        assert stranger.post("/api/auth/login", json=wrong).status_code == 401
    # Seven more over the last half hour, as the stranger's delays allowed them.
    stranger_hash = db.exec(select(LoginFailure)).first().client_hash  # type: ignore[union-attr]
    now = utcnow()
    for minutes in (30, 25, 20, 15, 10, 5, 0):
        db.add(
            LoginFailure(
                email="anna@example.org",
                client_hash=stranger_hash,
                at=now - timedelta(minutes=minutes),
            )
        )
    db.commit()
    held_off = stranger.post("/api/auth/login", json=wrong)
    assert held_off.status_code == 429
    assert int(held_off.headers["Retry-After"]) > 10 * 60  # the guesser waits long

    delayed = owner.post("/api/auth/login", json=right)
    assert delayed.status_code in {200, 429}
    if delayed.status_code == 429:  # the owner waits a minute at most
        assert int(delayed.headers["Retry-After"]) <= 60
        age_failures(db, 61)
    assert owner.post("/api/auth/login", json=right).status_code == 200
    # The owner's success does not wipe the stranger's record.
    assert stranger.post("/api/auth/login", json=wrong).status_code == 429


def test_client_addresses_are_stored_only_as_keyed_hashes(client: TestClient, db: Session):
    register(client)
    client.post("/api/auth/login", json={"email": "anna@example.org", "password": "wrong one 1"})
    failure = db.exec(select(LoginFailure)).one()
    assert failure.client_hash and len(failure.client_hash) == 64
    assert "testclient" not in failure.model_dump_json()
    # Another secret key gives another hash: not a plain digest anyone could recompute.
    import hashlib

    assert failure.client_hash != hashlib.sha256(b"testclient").hexdigest()
    assert db.exec(select(LoginFailure).where(col(LoginFailure.client_hash).is_(None))).all() == []
    db.commit()


def test_housekeeping_forgets_failures_older_than_the_window(
    client: TestClient, app: FastAPI, db: Session
):
    from portal import housekeeping

    register(client)
    wrong = {"email": "anna@example.org", "password": "wrong password 1"}
    for _ in range(2):
        client.post("/api/auth/login", json=wrong)
    old = db.exec(select(LoginFailure)).first()
    assert old is not None
    old_id = old.id
    old.at = utcnow() - timedelta(minutes=61)
    db.add(old)
    db.commit()
    housekeeping.run_once(
        engine=app.state.engine, vault=app.state.vault, settings=app.state.settings, mail=False
    )
    db.expunge_all()
    left = [failure.id for failure in db.exec(select(LoginFailure)).all()]
    db.commit()
    assert len(left) == 1 and old_id not in left
