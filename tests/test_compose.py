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
    "PORTAL_KMS_KEY_ID": "arn:aws:kms:eu-central-1:111122223333:key/sample",
    "AWS_ACCESS_KEY_ID": "AKIASAMPLE",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-sample",
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


MINIO_NODES = [f"minio{n}" for n in range(1, 5)]


def test_the_production_shape(compose: dict[str, Any]):
    """A proxy, two or more replicas, PostgreSQL, a four-node MinIO cluster behind one endpoint."""
    services = compose["services"]
    assert set(services) == {"proxy", "portal", "postgres", "s3", "createbuckets", *MINIO_NODES}
    assert services["postgres"]["image"].startswith("postgres:15")
    assert (ROOT / "Dockerfile").exists() and services["portal"]["build"] == "."
    assert services["portal"]["deploy"]["replicas"] >= 2
    assert "ports" not in services["portal"], "replicas are reached only through the proxy"
    assert services["proxy"]["ports"] == ["127.0.0.1:8000:8080"]
    nginx = compose["configs"]["nginx"]["content"]
    assert "server portal:8000" in nginx and "proxy_request_buffering off" in nginx
    assert "client_header_timeout 10s" in nginx and "client_body_timeout 60s" in nginx
    s3 = compose["configs"]["s3"]["content"]
    for node in MINIO_NODES:
        minio = services[node]
        assert minio["image"].startswith("minio/minio:RELEASE.")
        assert minio["command"][:2] == ["server", "http://minio{1...4}/data"]
        assert minio["volumes"][0].split(":")[0] in compose["volumes"]
        assert f"server {node}:9000" in s3
    assert services["portal"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (
        services["portal"]["depends_on"]["createbuckets"]["condition"]
        == "service_completed_successfully"
    )
    assert services["proxy"]["depends_on"]["portal"]["condition"] == "service_healthy"


def test_every_portal_variable_is_a_real_setting(compose: dict[str, Any]):
    known = {f"PORTAL_{name.upper()}" for name in Settings.model_fields if name != "storage"}
    known |= {f"PORTAL_STORAGE_{name.upper()}" for name in StorageSettings.model_fields}
    # Read by boto3 (KMS) and uvicorn (which proxy may name the client), not by our settings.
    known |= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "FORWARDED_ALLOW_IPS"}
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
    assert endpoint.hostname == "s3" and endpoint.port == 9000
    minio_env = services["minio1"]["environment"]
    assert settings.storage.access_key_id == minio_env["MINIO_ROOT_USER"]
    assert settings.storage.secret_access_key.get_secret_value() == interpolate(
        minio_env["MINIO_ROOT_PASSWORD"]
    )
    assert services["createbuckets"]["environment"]["BUCKET"] == settings.storage.bucket
    # Replicas share no disk: the key-encryption key is in KMS, not in a keyring file.
    assert settings.storage.key_provider == "kms"
    assert settings.storage.kms_key_id == SAMPLE_ENV["PORTAL_KMS_KEY_ID"]


def test_required_secrets_have_no_defaults(compose: dict[str, Any]):
    text = (ROOT / "docker-compose.yml").read_text()
    for name in SAMPLE_ENV:
        assert f"${{{name}:?" in text and f"${{{name}:-" not in text
