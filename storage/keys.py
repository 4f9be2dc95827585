"""Key providers behind one interface, and the factory that picks one from settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.errors import KeyUnavailable
from storage.keycache import DataKeyCache
from storage.keyprovider import KeyContext, KeyProvider, WrappedKey, canonical_context
from storage.keyring import KekVersion, LocalKeyring
from storage.kms import KmsKeyProvider
from storage.settings import StorageSettings

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

__all__ = [
    "DataKeyCache",
    "KekVersion",
    "KeyContext",
    "KeyProvider",
    "KmsKeyProvider",
    "LocalKeyring",
    "WrappedKey",
    "build_key_provider",
    "build_kms_client",
    "canonical_context",
]


def build_kms_client(settings: StorageSettings) -> KMSClient:
    """A KMS client for ``settings.region`` (and ``kms_endpoint_url`` when set).

    Credentials come from the standard AWS chain (role, profile, environment), not from the
    S3 access key, which usually belongs to a different service.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}
    )
    return boto3.client(
        "kms", region_name=settings.region, endpoint_url=settings.kms_endpoint_url, config=config
    )


def build_key_provider(
    settings: StorageSettings, kms_client: KMSClient | None = None
) -> KeyProvider:
    """The key provider ``settings.key_provider`` names.

    Parameters
    ----------
    settings
        Storage settings; ``keyring`` (JSON) wins over ``keyring_path`` for the local provider.
    kms_client
        An injected KMS client; built from settings when omitted.

    Raises
    ------
    KeyUnavailable
        The keyring is missing or unreadable, or KMS is selected without ``kms_key_id``.
    """
    if settings.key_provider == "kms":
        if not settings.kms_key_id:
            raise KeyUnavailable("key_provider is 'kms' but PORTAL_STORAGE_KMS_KEY_ID is not set")
        client = kms_client if kms_client is not None else build_kms_client(settings)
        return KmsKeyProvider(client, key_id=settings.kms_key_id)
    if settings.keyring is not None:
        return LocalKeyring(document=settings.keyring.get_secret_value())
    return LocalKeyring(settings.keyring_path)
