"""docker-compose.yml agrees with the settings the portal actually reads (no engine needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from portal.settings import Settings
from storage.settings import StorageSettings

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_ENV = {
    "PORTAL_SECRET_KEY": "s" * 48,
    "POSTGRES_PASSWORD": "pg-password-sample",
    "MINIO_ROOT_PASSWORD": "minio-password-sample",
}
VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*)|:\?[^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def interpolate(value: str) -> str:
    """Resolve ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}`` as compose does."""

    def resolve(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in SAMPLE_ENV:
            return SAMPLE_ENV[name]
        assert default is not None, f"{name} has neither a value nor a default"
        return default

    return VARIABLE.sub(resolve, value)


def portal_env(compose: dict[str, Any]) -> dict[str, str]:
    return {k: interpolate(str(v)) for k, v in compose["services"]["portal"]["environment"].items()}


def test_services_images_and_volumes(compose: dict[str, Any]):
    services = compose["services"]
    assert set(services) == {"portal", "postgres", "minio", "createbuckets"}
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["minio"]["image"].startswith("minio/minio:RELEASE.")
    assert (ROOT / "Dockerfile").exists() and services["portal"]["build"] == "."
    declared = set(compose["volumes"])
    for name in ("portal", "postgres", "minio"):
        mounts = [m.split(":")[0] for m in services[name]["volumes"]]
        assert mounts and set(mounts) <= declared, name
    assert services["portal"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (
        services["portal"]["depends_on"]["createbuckets"]["condition"]
        == "service_completed_successfully"
    )


def test_every_portal_variable_is_a_real_setting(compose: dict[str, Any]):
    known = {f"PORTAL_{name.upper()}" for name in Settings.model_fields if name != "storage"}
    known |= {f"PORTAL_STORAGE_{name.upper()}" for name in StorageSettings.model_fields}
    unknown = set(portal_env(compose)) - known
    assert not unknown, f"docker-compose sets variables the portal never reads: {unknown}"


def test_settings_built_from_compose_are_production_ready(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
):
    for name, value in portal_env(compose).items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    settings.check_production_ready()
    assert settings.production and settings.cookie_secure

    services = compose["services"]
    database = urlsplit(settings.database_url)
    postgres_env = services["postgres"]["environment"]
    assert database.hostname == "postgres" and database.port == 5432
    assert database.username == postgres_env["POSTGRES_USER"]
    assert database.path.lstrip("/") == postgres_env["POSTGRES_DB"]
    assert database.password == interpolate(postgres_env["POSTGRES_PASSWORD"])

    endpoint = urlsplit(settings.storage.endpoint_url or "")
    assert endpoint.hostname == "minio" and endpoint.port == 9000
    minio_env = services["minio"]["environment"]
    assert settings.storage.access_key_id == minio_env["MINIO_ROOT_USER"]
    assert settings.storage.secret_access_key.get_secret_value() == interpolate(
        minio_env["MINIO_ROOT_PASSWORD"]
    )
    assert services["createbuckets"]["environment"]["BUCKET"] == settings.storage.bucket
    assert str(settings.storage.keyring_path).startswith(str(settings.data_dir))
    assert any(m.endswith(f":{settings.data_dir}") for m in services["portal"]["volumes"])


def test_required_secrets_have_no_defaults(compose: dict[str, Any]):
    text = (ROOT / "docker-compose.yml").read_text()
    for name in SAMPLE_ENV:
        assert f"${{{name}:?" in text and f"${{{name}:-" not in text
