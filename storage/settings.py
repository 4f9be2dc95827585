"""Typed configuration of the storage package (environment prefix ``PORTAL_STORAGE_``)."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_S3_PORT = 8333
DEV_ACCESS_KEY = "portal-dev"
DEV_SECRET_KEY = "portal-dev-secret-change-me"  # noqa: S105 - embedded dev store only
MIB = 1024 * 1024


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
    keyring: SecretStr | None = None
    """Keyring JSON given by the environment instead of ``keyring_path`` (read-only)."""
    kms_key_id: str | None = None
    kms_endpoint_url: str | None = None

    segment_size: int = Field(default=64 * 1024, ge=4096, le=16 * MIB)
    """Plaintext bytes per encrypted segment (see docs/encryption.md)."""
    part_size: int = Field(default=8 * MIB, ge=5 * MIB)
    """S3 multipart part size; objects larger than one part upload in parts."""
    upload_concurrency: int = Field(default=3, ge=1, le=32)
    """Part buffers of one multipart upload (sent in parallel); memory is this x part_size."""
    key_cache_size: int = Field(default=1024, ge=0)
    """Unwrapped data keys kept in memory (0 disables the cache)."""
    key_cache_ttl: float = Field(default=300.0, ge=0)
    """Seconds an unwrapped data key stays cached."""

    embedded: bool = True
    """``portal run`` starts SeaweedFS (``weed mini``) as a child process on loopback."""
    embedded_dir: Path = Path("var/seaweedfs")
