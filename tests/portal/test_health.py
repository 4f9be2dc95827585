"""Liveness and readiness against the real database and SeaweedFS."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from portal.app import create_app
from portal.settings import Settings
from storage.embedded import EmbeddedS3
from tests.fixtures.app import make_settings
from tests.services import free_port_block


def test_healthz_and_readyz_when_everything_answers(client: TestClient):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "object_storage": "ok", "keys": "ok"},
    }


def test_readyz_is_503_when_s3_is_down(tmp_path: Path, database_url: str, seaweed: EmbeddedS3):
    settings = make_settings(tmp_path, database_url, seaweed)
    settings.storage.endpoint_url = f"http://127.0.0.1:{free_port_block()}"
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
    assert response.status_code == 503
    assert response.json()["checks"]["object_storage"] == "unreachable"
    assert response.json()["status"] == "not ready"


def test_readyz_is_503_when_the_keyring_is_gone(settings: Settings, client: TestClient):
    settings.storage.keyring_path.unlink()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {
        "database": "ok",
        "object_storage": "ok",
        "keys": "unavailable",
    }


def test_readyz_is_503_when_the_database_is_gone(tmp_path: Path, seaweed: EmbeddedS3):
    settings = make_settings(tmp_path, "sqlite:////nonexistent-dir/portal.db", seaweed)
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unreachable"
