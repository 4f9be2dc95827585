"""Security headers on every kind of response, including errors."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from tests.fixtures.app import Accounts, open_case

REQUIRED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def assert_secure_headers(response) -> None:  # type: ignore[no-untyped-def]
    for name, value in REQUIRED.items():
        assert response.headers.get(name) == value, (name, response.request.url)
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-request-id"]


def test_headers_on_success_error_and_patient_data(client: TestClient, accounts: Accounts):
    patient = accounts.patient()
    case = open_case(client, patient)
    responses = [
        client.get("/healthz"),
        client.get("/api/me", headers=patient.headers),
        client.get(f"/api/cases/{case['id']}", headers=patient.headers),
        client.get(f"/api/cases/{uuid.uuid4()}", headers=patient.headers),
        client.get("/api/me"),
        client.post(
            "/api/auth/login", content=b"junk", headers={"Content-Type": "application/json"}
        ),
        client.get("/no-such-page"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 404, 401, 422, 404]
    for response in responses:
        assert_secure_headers(response)


def test_request_id_is_kept_when_well_formed_and_replaced_otherwise(client: TestClient):
    kept = client.get("/healthz", headers={"X-Request-ID": "trace-1234abcd"})
    assert kept.headers["x-request-id"] == "trace-1234abcd"
    replaced = client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})
    assert replaced.headers["x-request-id"] != "bad id\nwith newline"
    assert len(replaced.headers["x-request-id"]) == 32
