"""Cookie-authenticated writes need the CSRF token; bearer-token clients do not."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from portal.accounts.models import User
from tests.fixtures.app import PASSWORD, Accounts
from tests.portal.test_authorization import CASE_BODY
from tests.portal.test_pages import form_token


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


# --- before there is a session: sign-in and registration (login CSRF) ---------------------------

EVIL = {"Origin": "http://evil.example"}


def test_cross_site_api_sign_in_and_registration_are_refused(
    client: TestClient, accounts: Accounts
):
    patient = accounts.patient()
    body = {"email": patient.email, "password": PASSWORD}
    for headers in (EVIL, {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
        refused = client.post("/api/auth/login", json=body, headers=headers)
        assert refused.status_code == 403, headers
        assert "came from another site" in refused.json()["detail"]
        assert "set-cookie" not in refused.headers
    registration = {"email": "new@example.org", "password": PASSWORD, "full_name": "New Person"}
    refused = client.post("/api/auth/register", json=registration, headers=EVIL)
    assert refused.status_code == 403
    sandboxed = {"Origin": "null", "Sec-Fetch-Site": "cross-site"}
    assert client.post("/api/auth/login", json=body, headers=sandboxed).status_code == 403
    same_site = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/api/auth/login", json=body, headers=same_site).status_code == 200
    # Chromium's own form posts from a no-referrer page: Origin null, Sec-Fetch-Site decides.
    own_form = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/api/auth/login", json=body, headers=own_form).status_code == 200
    assert client.post("/api/auth/login", json=body).status_code == 200  # curl, httpx: no Origin


def test_api_sign_in_takes_only_json_which_a_cross_site_form_cannot_send(
    client: TestClient, accounts: Accounts
):
    patient = accounts.patient()
    body = f'{{"email": "{patient.email}", "password": "{PASSWORD}"}}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        refused = client.post(
            "/api/auth/login", content=body, headers={"Content-Type": content_type}
        )
        assert refused.status_code == 415, content_type
        assert "set-cookie" not in refused.headers


def test_sign_in_and_registration_forms_need_their_pre_session_token(
    client: TestClient, accounts: Accounts, db: Session
):
    patient = accounts.patient()
    login = {"email": patient.email, "password": PASSWORD}
    no_token = client.post("/login", data=login, follow_redirects=False)
    assert no_token.status_code == 403 and "did not come from this site" in no_token.text
    assert "portal_session" not in no_token.headers.get("set-cookie", "")
    token = form_token(client, "/login")
    forged = client.post("/login", data={**login, "csrf_token": "0" * 64}, follow_redirects=False)
    assert forged.status_code == 403
    cross_site = client.post(
        "/login", data={**login, "csrf_token": token}, headers=EVIL, follow_redirects=False
    )
    assert cross_site.status_code == 403
    client.cookies.clear()  # a token without the cookie it belongs to is worthless
    stale = client.post("/login", data={**login, "csrf_token": token}, follow_redirects=False)
    assert stale.status_code == 403

    registration = {"full_name": "New Person", "email": "new@example.org", "password": PASSWORD}
    refused = client.post("/register", data=registration, follow_redirects=False)
    assert refused.status_code == 403
    users = db.exec(select(User).where(User.email == "new@example.org")).all()
    db.commit()
    assert users == []

    token = form_token(client, "/login")
    signed_in = client.post("/login", data={**login, "csrf_token": token}, follow_redirects=False)
    assert signed_in.status_code == 303 and client.cookies.get("portal_session")


def test_a_token_with_non_ascii_characters_is_refused_not_an_error(
    client: TestClient, accounts: Accounts
):
    cookie_login(client, accounts)
    header = client.post(
        "/api/cases", json=CASE_BODY, headers={"X-CSRF-Token": "é".encode("latin-1")}
    )  # type: ignore[dict-item]
    assert header.status_code == 403
    form = client.post("/logout", data={"csrf_token": "токен"}, follow_redirects=False)
    assert form.status_code == 403
