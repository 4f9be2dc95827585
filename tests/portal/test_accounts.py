"""Registration, sign-in, sessions, throttling and sign-out through the JSON API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from portal.accounts.models import AuthSession, Role, User
from portal.accounts.service import hash_token
from portal.audit.models import AuditEvent
from portal.db import utcnow
from tests.fixtures.app import PASSWORD, Accounts
from tests.fixtures.logs import SensitiveValues


def register(client: TestClient, **overrides: str):
    body = {"email": "anna@example.org", "password": PASSWORD, "full_name": "Anna Petrova"}
    body.update(overrides)
    return client.post("/api/auth/register", json=body)


def test_register_login_me_logout_then_token_is_refused(
    client: TestClient, sensitive: SensitiveValues
):
    sensitive.add("Anna Petrova", "anna@example.org")
    created = register(client, language="ru")
    assert created.status_code == 201
    assert created.json()["role"] == "patient"
    assert "password" not in created.text and "hash" not in created.text

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
        "id": created.json()["id"],
        "email": "anna@example.org",
        "full_name": "Anna Petrova",
        "role": "patient",
        "language": "ru",
        "totp_enabled": False,
        "date_of_birth": None,
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


def test_duplicate_email_is_a_conflict(client: TestClient):
    assert register(client).status_code == 201
    again = register(client, email="ANNA@example.org")
    assert again.status_code == 409
    assert "already exists" in again.json()["detail"]


def test_oversized_body_is_refused_before_parsing(client: TestClient):
    response = register(client, full_name="x" * (2 * 1024 * 1024))
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]


def test_five_failures_throttle_the_account_with_retry_after(client: TestClient, db: Session):
    register(client)
    for _ in range(5):
        wrong = client.post(
            "/api/auth/login", json={"email": "anna@example.org", "password": "wrong password 1"}
        )
        assert wrong.status_code == 401
    throttled = client.post(
        "/api/auth/login", json={"email": "anna@example.org", "password": PASSWORD}
    )
    assert throttled.status_code == 429
    retry_after = int(throttled.headers["Retry-After"])
    assert 14 * 60 < retry_after <= 15 * 60
    assert "Too many failed sign-in attempts" in throttled.json()["detail"]

    failures = db.exec(select(AuditEvent).where(AuditEvent.action == "auth.login")).all()
    assert [e.outcome for e in failures] == ["failure"] * 5 + ["throttled"]
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
    from portal.accounts.models import LoginFailure

    register(client)
    for _ in range(5):
        client.post(
            "/api/auth/login", json={"email": "anna@example.org", "password": "wrong password 1"}
        )
    for failure in db.exec(select(LoginFailure)).all():
        failure.at = utcnow() - timedelta(minutes=16)
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


def test_registration_can_never_create_staff(client: TestClient):
    response = register(client, role="admin")
    assert response.status_code == 201
    assert response.json()["role"] == "patient"
