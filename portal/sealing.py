"""Small secrets held by the portal itself: sealed values and signatures under the app secret.

Purposes are bound into every derived key, so a value sealed for one purpose (a TOTP secret)
can never be opened or forged as another (a CSRF token). Patient files never pass through here:
their encryption lives in ``storage``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_NONCE_BYTES = 12


class SealedValueInvalid(ValueError):
    """A sealed value was altered, or sealed under another secret or purpose."""


class SecretBox:
    """Seal, open and sign short values under keys derived from the portal secret."""

    def __init__(self, secret_key: str) -> None:
        self._secret = secret_key.encode()

    def _key(self, purpose: str) -> bytes:
        return HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"portal-secret-box-v1",
            info=purpose.encode(),
        ).derive(self._secret)

    def seal(self, purpose: str, plaintext: bytes) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self._key(purpose)).encrypt(nonce, plaintext, purpose.encode())
        return base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, purpose: str, token: str) -> bytes:
        try:
            raw = base64.urlsafe_b64decode(token.encode())
            nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
            return AESGCM(self._key(purpose)).decrypt(nonce, sealed, purpose.encode())
        except (InvalidTag, ValueError) as exc:
            raise SealedValueInvalid from exc

    def sign(self, purpose: str, message: str) -> str:
        return hmac.new(self._key(purpose), message.encode(), hashlib.sha256).hexdigest()

    def verify(self, purpose: str, message: str, signature: str) -> bool:
        # As bytes: compare_digest refuses non-ASCII str, and a forged token may contain any.
        expected = self.sign(purpose, message).encode()
        return hmac.compare_digest(expected, signature.encode("utf-8", "surrogatepass"))
