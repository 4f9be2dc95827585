"""Typed configuration of the storage package (environment prefix ``PORTAL_STORAGE_``)."""

from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_S3_PORT = 8333
DEV_ACCESS_KEY = "portal-dev"
DEV_SECRET_KEY = "portal-dev-secret-change-me"  # noqa: S105 - embedded dev store only


class StorageSettings(BaseSettings):
    """Where encrypted objects go and where their keys come from."""

    model_config = SettingsConfigDict(env_prefix="PORTAL_STORAGE_", extra="ignore")

    endpoint_url: str | None = f"http://127.0.0.1:{DEFAULT_S3_PORT}"
    """S3 endpoint; ``None`` means AWS itself (the region's default endpoint)."""
    region: str = "us-east-1"
    access_key_id: str = DEV_ACCESS_KEY
    secret_access_key: SecretStr = SecretStr(DEV_SECRET_KEY)
    bucket: str = "portal-objects"
    create_bucket: bool = True
    """Create the bucket at start when missing (development and tests)."""

    key_provider: Literal["local", "kms"] = "local"
    keyring_path: Path = Path("var/keyring.json")
    kms_key_id: str | None = None
    kms_endpoint_url: str | None = None

    segment_size: int = 64 * 1024
    """Plaintext bytes per encrypted segment (see docs/encryption.md)."""
    part_size: int = 8 * 1024 * 1024
    """S3 multipart part size; objects larger than one part upload in parts."""

    embedded: bool = True
    """``portal run`` starts SeaweedFS (``weed mini``) as a child process on loopback."""
    embedded_dir: Path = Path("var/seaweedfs")
