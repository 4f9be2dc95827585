"""Sealed text for database columns: AES-256-GCM under a per-case key made for this purpose.

The cipher is handed a text key and never looks keys up (the vault derives it). See the
"Database columns" part of docs/encryption.md for the byte format.

A sealed value is ``version (1) ‖ nonce (12) ‖ ciphertext ‖ tag (16)``; its associated data
binds the format version and the table, column and row it was written for, so a value copied
to another row, column or case does not open.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storage.errors import IntegrityError

TEXT_FORMAT_VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
SHARE_BYTES = 32
_AAD_LABEL = b"portal sealed text v1\x00"
_KEY_LABEL = b"portal column text key v1\x00"


@dataclass(frozen=True)
class TextBinding:
    """Where a sealed value lives: opening it anywhere else fails."""

    table: str
    column: str
    row_id: str

    def encode(self) -> bytes:
        """``u16 len | table | u16 len | column | u16 len | row id`` (UTF-8, big-endian)."""
        parts = (self.table, self.column, self.row_id)
        return b"".join(struct.pack(">H", len(raw)) + raw for raw in (p.encode() for p in parts))


def derive_text_key(data_key: bytes, *, share: bytes, case_id: str) -> bytes:
    """The case's column key: HKDF-SHA-256 of the data key, salted with the key share.

    The share is a random value stored (encrypted) in the bucket beside the case's objects,
    so the database and the key-encryption key together are not enough to rebuild this key.
    """
    if len(data_key) != KEY_BYTES or len(share) != SHARE_BYTES:
        raise IntegrityError("text key material has the wrong length")
    return HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_BYTES,
        salt=share,
        info=_KEY_LABEL + case_id.encode("utf-8"),
    ).derive(data_key)


class TextCipher:
    """Seals and opens the text columns of one case."""

    def __init__(self, text_key: bytes) -> None:
        if len(text_key) != KEY_BYTES:
            raise ValueError("text key must be 32 bytes")
        self._aead = AESGCM(text_key)

    def seal(self, plaintext: str, binding: TextBinding) -> bytes:
        """``version ‖ nonce ‖ AES-256-GCM(plaintext, aad)`` with a fresh random nonce."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        version = bytes([TEXT_FORMAT_VERSION])
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), _aad(version, binding))
        return version + nonce + sealed

    def open(self, sealed: bytes, binding: TextBinding) -> str:
        """The plaintext of ``sealed``.

        Raises
        ------
        IntegrityError
            Unknown format, truncated, altered, or written for another row, column or case.
        """
        if len(sealed) < 1 + NONCE_BYTES + TAG_BYTES:
            raise IntegrityError("sealed text is truncated")
        version, nonce, body = sealed[:1], sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        if version[0] != TEXT_FORMAT_VERSION:
            raise IntegrityError(f"unsupported sealed text format {version[0]}")
        try:
            plaintext = self._aead.decrypt(nonce, body, _aad(version, binding))
        except InvalidTag:
            raise IntegrityError(
                f"sealed text in {binding.table}.{binding.column} failed authentication: "
                "altered, or copied from another row, column or case"
            ) from None
        return plaintext.decode("utf-8")


def _aad(version: bytes, binding: TextBinding) -> bytes:
    return _AAD_LABEL + version + binding.encode()
