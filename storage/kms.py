"""AWS KMS as key provider: ``GenerateDataKey`` / ``Decrypt`` / ``ReEncrypt`` with a context.

The encryption context (e.g. ``{"case_id": ...}``) is authenticated by KMS and appears in
CloudTrail, so every unwrap is attributable to a case. The envelope's KEK id is the key ARN
KMS reports, which lets rotation to a different KMS key re-wrap old data keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from storage.errors import IntegrityError, KeyUnavailable
from storage.keyprovider import DATA_KEY_BYTES, KeyContext, KeyProvider, WrappedKey

if TYPE_CHECKING:
    from mypy_boto3_kms import KMSClient

_REFUSED_CIPHERTEXT = {"InvalidCiphertextException", "IncorrectKeyException"}


class KmsKeyProvider(KeyProvider):
    """Key provider that asks AWS KMS (or a compatible service) to wrap data keys."""

    name = "kms"

    def __init__(self, client: KMSClient, *, key_id: str) -> None:
        self._client = client
        self._key_id = key_id

    def generate_data_key(self, *, context: KeyContext) -> tuple[bytes, bytes]:
        """``GenerateDataKey`` (AES_256) under the configured KMS key."""
        with _kms_errors("generate a data key"):
            answer = self._client.generate_data_key(
                KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=dict(context)
            )
        data_key = answer["Plaintext"]
        if len(data_key) != DATA_KEY_BYTES:
            raise KeyUnavailable("KMS returned a data key of the wrong length")
        return data_key, self._envelope(answer["KeyId"], answer["CiphertextBlob"])

    def unwrap(self, wrapped: bytes, *, context: KeyContext) -> bytes:
        """``Decrypt`` pinned to the KMS key named in the envelope."""
        envelope = self.parse(wrapped)
        with _kms_errors("unwrap the data key"):
            answer = self._client.decrypt(
                CiphertextBlob=envelope.payload,
                KeyId=envelope.kek_id,
                EncryptionContext=dict(context),
            )
        return answer["Plaintext"]

    def rewrap(self, wrapped: bytes, *, context: KeyContext) -> bytes:
        """``ReEncrypt`` to the configured key; the plaintext key never leaves KMS."""
        envelope = self.parse(wrapped)
        with _kms_errors("re-wrap the data key"):
            answer = self._client.re_encrypt(
                CiphertextBlob=envelope.payload,
                SourceKeyId=envelope.kek_id,
                SourceEncryptionContext=dict(context),
                DestinationKeyId=self._key_id,
                DestinationEncryptionContext=dict(context),
            )
        return self._envelope(answer["KeyId"], answer["CiphertextBlob"])

    def check(self) -> None:
        """``DescribeKey``: the key exists, is enabled and can encrypt."""
        with _kms_errors("describe the key"):
            metadata = self._client.describe_key(KeyId=self._key_id)["KeyMetadata"]
        if not metadata.get("Enabled", False):
            raise KeyUnavailable(f"KMS key {self._key_id} is disabled")

    def _envelope(self, key_arn: str, blob: bytes) -> bytes:
        return WrappedKey(provider=self.name, kek_id=key_arn, payload=blob).encode()


@contextmanager
def _kms_errors(action: str) -> Iterator[None]:
    """Translate boto errors into storage errors naming what was attempted."""
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "Unknown")
        if code in _REFUSED_CIPHERTEXT:
            raise IntegrityError(
                f"KMS refused to {action}: the wrapped key belongs to another case "
                "or key, or is corrupt"
            ) from exc
        raise KeyUnavailable(f"KMS could not {action}: {code}") from exc
    except BotoCoreError as exc:
        raise KeyUnavailable(f"KMS is unreachable, could not {action}: {exc}") from exc
