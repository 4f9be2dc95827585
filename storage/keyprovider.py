"""The key-provider interface and the self-describing wrapped-key envelope.

A provider wraps and unwraps 256-bit data keys under a key-encryption key (KEK) it holds.
Every wrapped key names the provider and the KEK that wrapped it, so rotation can tell
which keys still need re-wrapping and unwrapping can pick the right KEK version.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

from storage.errors import IntegrityError, KeyUnavailable

DATA_KEY_BYTES = 32
ENVELOPE_VERSION = 1

KeyContext = Mapping[str, str]
"""Non-secret facts bound to a wrapped key, e.g. ``{"case_id": "c-42"}``."""


@dataclass(frozen=True)
class WrappedKey:
    """A data key wrapped by ``provider`` under KEK ``kek_id``; ``payload`` is provider-specific."""

    provider: str
    kek_id: str
    payload: bytes

    def encode(self) -> bytes:
        """Serialise as ``version | len provider | provider | len kek_id | kek_id | payload``."""
        provider, kek_id = self.provider.encode("ascii"), self.kek_id.encode("ascii")
        if len(provider) > 255 or len(kek_id) > 255:
            raise ValueError("provider name and KEK id must be at most 255 bytes")
        return b"".join(
            (
                bytes((ENVELOPE_VERSION, len(provider))),
                provider,
                bytes((len(kek_id),)),
                kek_id,
                self.payload,
            )
        )

    @classmethod
    def decode(cls, blob: bytes) -> WrappedKey:
        """Parse an encoded wrapped key.

        Raises
        ------
        IntegrityError
            When the bytes are not a wrapped key of a known envelope version.
        """
        try:
            if blob[0] != ENVELOPE_VERSION:
                raise IntegrityError(f"wrapped key has unknown envelope version {blob[0]}")
            end = 2 + blob[1]
            provider = blob[2:end].decode("ascii")
            kek_end = end + 1 + blob[end]
            kek_id = blob[end + 1 : kek_end].decode("ascii")
        except (IndexError, UnicodeDecodeError) as exc:
            raise IntegrityError("wrapped key is malformed") from exc
        payload = bytes(blob[kek_end:])
        if not provider or not kek_id or not payload:
            raise IntegrityError("wrapped key is malformed")
        return cls(provider=provider, kek_id=kek_id, payload=payload)


def canonical_context(context: KeyContext) -> bytes:
    """The context as canonical JSON (sorted keys, no spaces), used as associated data."""
    return json.dumps(dict(context), sort_keys=True, separators=(",", ":")).encode("utf-8")


class KeyProvider(ABC):
    """Wraps and unwraps data keys; never sees object bytes."""

    name: str

    @abstractmethod
    def generate_data_key(self, *, context: KeyContext) -> tuple[bytes, bytes]:
        """Create a fresh data key.

        Parameters
        ----------
        context
            Facts the wrapped key is bound to; the same context is needed to unwrap it.

        Returns
        -------
        tuple[bytes, bytes]
            The 32-byte plaintext data key and its wrapped (storable) form.
        """

    @abstractmethod
    def unwrap(self, wrapped: bytes, *, context: KeyContext) -> bytes:
        """Return the plaintext data key of ``wrapped``.

        Raises
        ------
        IntegrityError
            The wrapped key is corrupt, belongs to another context or another KEK.
        KeyUnavailable
            The KEK is retired, unknown or the provider cannot be reached.
        """

    @abstractmethod
    def rewrap(self, wrapped: bytes, *, context: KeyContext) -> bytes:
        """Wrap the same data key under the provider's current KEK (objects stay untouched)."""

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`~storage.errors.KeyUnavailable` unless keys can be wrapped now."""

    def parse(self, wrapped: bytes) -> WrappedKey:
        """Decode ``wrapped`` and make sure this provider made it."""
        envelope = WrappedKey.decode(wrapped)
        if envelope.provider != self.name:
            raise KeyUnavailable(
                f"data key was wrapped by the {envelope.provider!r} key provider, "
                f"but this portal uses {self.name!r}"
            )
        return envelope
