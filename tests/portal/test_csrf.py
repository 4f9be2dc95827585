"""Cookie-authenticated writes need the CSRF token; bearer-token clients do not."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.fixtures.app import PASSWORD, Accounts
from tests.portal.test_authorization import CASE_BODY


def cookie_login(client: TestClient, accounts: Accounts) -> str:
    patient = accounts.patient()
    login = client.post("/api/auth/login", json={"email": patient.email, "password": PASSWORD})
    assert client.cookies.get("portal_session")
    return str(login.json()["csrf_token"])


def test_cookie_write_without_token_is_refused(client: TestClient, accounts: Accounts):
    cookie_login(client, accounts)
    assert client.get("/api/me").status_code == 200  # reads need no token
    refused = client.post("/api/cases", json=CASE_BODY)
    assert refused.status_code == 403
    assert "did not come from this site" in refused.json()["detail"]
    forged = client.post("/api/cases", json=CASE_BODY, headers={"X-CSRF-Token": "0" * 64})
    assert forged.status_code == 403


def test_cookie_write_with_token_succeeds(client: TestClient, accounts: Accounts):
    csrf = cookie_login(client, accounts)
    assert (
        client.post("/api/cases", json=CASE_BODY, headers={"X-CSRF-Token": csrf}).status_code == 201
    )
    assert client.get("/api/auth/csrf").json() == {"csrf_token": csrf}


def test_token_of_one_session_does_not_work_for_another(client: TestClient, accounts: Accounts):
    first = cookie_login(client, accounts)
    client.cookies.clear()
    cookie_login(client, accounts)
    assert (
        client.post("/api/cases", json=CASE_BODY, headers={"X-CSRF-Token": first}).status_code
        == 403
    )


def test_logout_by_cookie_needs_the_token_too(client: TestClient, accounts: Accounts):
    csrf = cookie_login(client, accounts)
    cookie = client.cookies.get("portal_session")
    assert client.post("/api/auth/logout").status_code == 403
    assert client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    client.cookies.clear()
    revoked = client.get("/api/me", headers={"Cookie": f"portal_session={cookie}"})
    assert revoked.status_code == 401


def test_bearer_clients_need_no_csrf_token(client: TestClient, accounts: Accounts):
    patient = accounts.patient()
    assert client.post("/api/cases", json=CASE_BODY, headers=patient.headers).status_code == 201
