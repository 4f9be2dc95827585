"""Two-factor sign-in: required for staff, optional for patients, codes single-use."""

from __future__ import annotations

import pyotp
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from portal.accounts.models import Role
from portal.audit.models import AuditEvent
from tests.fixtures.app import Accounts, open_case


def test_staff_need_a_code_and_wrong_or_replayed_codes_fail(
    client: TestClient, accounts: Accounts, db: Session
):
    specialist = accounts.staff(Role.specialist)
    body = {"email": specialist.email, "password": specialist.password}
    missing = client.post("/api/auth/login", json=body)
    assert missing.status_code == 401
    assert "6-digit code" in missing.json()["detail"]
    wrong = client.post("/api/auth/login", json={**body, "otp": "000000"})
    assert wrong.status_code == 401
    code = specialist.next_otp()
    assert client.post("/api/auth/login", json={**body, "otp": code}).status_code == 200
    replay = client.post("/api/auth/login", json={**body, "otp": code})
    assert replay.status_code == 401
    assert "already used" in replay.json()["detail"]
    outcomes = [
        (e.outcome, e.details)
        for e in db.exec(select(AuditEvent).where(AuditEvent.actor_id == specialist.user_id)).all()
    ]
    assert outcomes[-4:] == [
        ("failure", '{"reason":"otp_required"}'),
        ("failure", '{"reason":"bad_otp"}'),
        ("success", "{}"),
        ("failure", '{"reason":"bad_otp"}'),
    ]


def test_unenrolled_staff_may_only_enrol_then_gain_full_access(
    client: TestClient, accounts: Accounts
):
    coordinator = accounts.staff(Role.coordinator, enrolled=False)
    login = client.post(
        "/api/auth/login", json={"email": coordinator.email, "password": coordinator.password}
    )
    assert login.status_code == 200 and login.json()["totp_enrollment_required"] is True
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    blocked = client.get("/api/cases", headers=headers)
    assert blocked.status_code == 403
    assert "two-factor" in blocked.json()["detail"]

    password = {"password": coordinator.password}
    enrolment = client.post("/api/auth/totp/enroll", json=password, headers=headers).json()
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/")
    assert enrolment["qr_svg"].startswith("<svg")
    bad = client.post("/api/auth/totp/confirm", json={"otp": "123456", **password}, headers=headers)
    assert bad.status_code == 422
    code = pyotp.TOTP(enrolment["secret"]).now()
    confirmed = client.post(
        "/api/auth/totp/confirm", json={"otp": code, **password}, headers=headers
    )
    assert confirmed.status_code == 204
    assert client.get("/api/cases", headers=headers).status_code == 200
    assert client.get("/api/me", headers=headers).json()["totp_enabled"] is True
    # From now on the password alone is not enough.
    again = client.post(
        "/api/auth/login", json={"email": coordinator.email, "password": coordinator.password}
    )
    assert again.status_code == 401


def test_patients_may_opt_in_and_out(client: TestClient, accounts: Accounts):
    patient = accounts.patient()
    password = {"password": patient.password}
    enrolment = client.post("/api/auth/totp/enroll", json=password, headers=patient.headers)
    totp = pyotp.TOTP(enrolment.json()["secret"])
    step = int(__import__("time").time() // 30)
    assert (
        client.post(
            "/api/auth/totp/confirm",
            json={"otp": totp.at(step * 30), **password},
            headers=patient.headers,
        ).status_code
        == 204
    )
    assert (
        client.post(
            "/api/auth/login", json={"email": patient.email, "password": patient.password}
        ).status_code
        == 401
    )
    disable = client.post(
        "/api/auth/totp/disable",
        json={"password": patient.password, "otp": totp.at((step + 1) * 30)},
        headers=patient.headers,
    )
    assert disable.status_code == 204
    assert (
        client.post(
            "/api/auth/login", json={"email": patient.email, "password": patient.password}
        ).status_code
        == 200
    )


def test_staff_cannot_turn_totp_off(client: TestClient, accounts: Accounts):
    admin = accounts.staff(Role.admin)
    response = client.post(
        "/api/auth/totp/disable",
        json={"password": admin.password, "otp": admin.next_otp()},
        headers=admin.headers,
    )
    assert response.status_code == 403


def test_enrolment_only_session_cannot_open_cases(client: TestClient, accounts: Accounts):
    patient = accounts.patient()
    open_case(client, patient)
    specialist = accounts.staff(Role.specialist, enrolled=False)
    login = client.post(
        "/api/auth/login", json={"email": specialist.email, "password": specialist.password}
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert client.get("/api/audit", headers=headers).status_code == 403


def test_turning_two_step_on_needs_the_current_password(
    client: TestClient, accounts: Accounts, db: Session
):
    """A stolen session alone cannot put the owner's sign-in behind an attacker's phone."""
    patient = accounts.patient()
    headers = patient.headers
    missing = client.post("/api/auth/totp/enroll", json={}, headers=headers)
    assert missing.status_code == 422 and missing.json()["detail"] == "password is required"
    wrong = client.post("/api/auth/totp/enroll", json={"password": "not mine 123"}, headers=headers)
    assert wrong.status_code == 403 and wrong.json() == {"detail": "The password is not correct."}
    assert client.get("/api/me", headers=headers).json()["totp_enabled"] is False

    enrolment = client.post(
        "/api/auth/totp/enroll", json={"password": patient.password}, headers=headers
    ).json()
    code = pyotp.TOTP(enrolment["secret"]).now()
    refused = client.post(
        "/api/auth/totp/confirm", json={"otp": code, "password": "not mine 123"}, headers=headers
    )
    assert refused.status_code == 403
    assert client.get("/api/me", headers=headers).json()["totp_enabled"] is False
    reasons = [
        e.details for e in db.exec(select(AuditEvent).where(AuditEvent.outcome == "failure")).all()
    ]
    assert reasons == ['{"reason":"reauth_totp_enroll"}', '{"reason":"reauth_totp_confirm"}']
    db.commit()


def test_wrong_passwords_at_enrolment_count_towards_the_sign_in_throttle(
    client: TestClient, accounts: Accounts
):
    patient = accounts.patient()
    for _ in range(5):
        wrong = client.post(
            "/api/auth/totp/enroll", json={"password": "guess number 1"}, headers=patient.headers
        )
        assert wrong.status_code == 403
    guarded = client.post(
        "/api/auth/totp/enroll", json={"password": patient.password}, headers=patient.headers
    )
    assert guarded.status_code == 429 and int(guarded.headers["Retry-After"]) > 0
    signing_in = client.post(
        "/api/auth/login", json={"email": patient.email, "password": patient.password}
    )
    assert signing_in.status_code == 429
