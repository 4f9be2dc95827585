"""Settings from the environment, and refusal to run production with development secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from portal.app import create_app
from portal.settings import InsecureProductionSettings, Settings
from storage.embedded import EmbeddedS3
from tests.fixtures.app import PASSWORD, Accounts, make_settings

PRODUCTION = {
    "PORTAL_ENVIRONMENT": "production",
    "PORTAL_SECRET_KEY": "k" * 48,
    "PORTAL_COOKIE_SECURE": "true",
    "PORTAL_BASE_URL": "https://portal.example.org",
    "PORTAL_STORAGE_SECRET_ACCESS_KEY": "a-real-secret-from-the-vault",
    "PORTAL_DATABASE_URL": "postgresql+psycopg://portal@db/portal",
    "PORTAL_STORAGE_KEY_PROVIDER": "kms",
    "PORTAL_STORAGE_KMS_KEY_ID": "alias/portal",
}


@pytest.fixture
def production_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_settings_come_from_portal_environment_variables(production_env: pytest.MonkeyPatch):
    settings = Settings()
    assert settings.production and settings.cookie_secure
    assert settings.database_url == PRODUCTION["PORTAL_DATABASE_URL"]
    assert settings.storage.secret_access_key.get_secret_value() == "a-real-secret-from-the-vault"
    assert settings.cookie_name == "__Host-portal_session"
    settings.check_production_ready()


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        (
            "PORTAL_SECRET_KEY",
            "insecure-development-secret-change-me",
            "PORTAL_SECRET_KEY is the development default",
        ),
        ("PORTAL_SECRET_KEY", "short", "at least 32 characters"),
        ("PORTAL_COOKIE_SECURE", "false", "PORTAL_COOKIE_SECURE must be true"),
        ("PORTAL_BASE_URL", "http://portal.example.org", "https://"),
        (
            "PORTAL_STORAGE_SECRET_ACCESS_KEY",
            "portal-dev-secret-change-me",
            "STORAGE_SECRET_ACCESS_KEY",
        ),
    ],
)
def test_production_refuses_to_start_with_insecure_settings(
    production_env: pytest.MonkeyPatch, variable: str, value: str, complaint: str
):
    production_env.setenv(variable, value)
    with pytest.raises(InsecureProductionSettings, match=complaint):
        create_app(Settings())


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("PORTAL_DATABASE_URL", "sqlite:///var/portal.db", "PORTAL_DATABASE_URL is SQLite"),
        ("PORTAL_STORAGE_KEY_PROVIDER", "local", "local keyring file"),
    ],
)
def test_production_refuses_single_node_parts_unless_asked_for(
    production_env: pytest.MonkeyPatch, variable: str, value: str, complaint: str
):
    production_env.setenv(variable, value)
    with pytest.raises(InsecureProductionSettings, match=complaint) as refused:
        create_app(Settings())
    assert "PORTAL_SINGLE_NODE=true" in str(refused.value)
    production_env.setenv("PORTAL_SINGLE_NODE", "true")
    Settings().check_production_ready()


def test_a_keyring_given_by_the_environment_is_not_a_single_node_part(
    production_env: pytest.MonkeyPatch,
):
    production_env.setenv("PORTAL_STORAGE_KEY_PROVIDER", "local")
    production_env.setenv("PORTAL_STORAGE_KEYRING", '{"keys": {}}')
    Settings().check_production_ready()


def test_development_defaults_use_files_under_var():
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url.startswith("sqlite:///")
    assert not settings.production


def test_production_cookie_is_secure_and_host_prefixed(
    tmp_path: Path, database_url: str, seaweed: EmbeddedS3
):
    settings = make_settings(
        tmp_path,
        database_url,
        seaweed,
        environment="production",
        cookie_secure=True,
        base_url="https://portal.example.org",
        single_node=True,
    )
    app = create_app(settings)
    with TestClient(app, base_url="https://portal.example.org") as client:
        Accounts(client, app).patient()
        login = client.post(
            "/api/auth/login", json={"email": next(iter(_emails(app))), "password": PASSWORD}
        )
    cookie = login.headers["set-cookie"]
    assert cookie.startswith("__Host-portal_session=")
    assert "Secure" in cookie and "HttpOnly" in cookie
    assert login.headers["strict-transport-security"].startswith("max-age=")
    assert client.app is app and app.openapi_url is None  # no API browser in production


def _emails(app) -> list[str]:  # type: ignore[no-untyped-def]
    from sqlmodel import Session, select

    from portal.accounts.models import User

    with Session(app.state.engine) as session:
        return [user.email for user in session.exec(select(User)).all()]
