"""A local keyring: versioned 256-bit master keys (KEKs) in a 0600 JSON file.

File layout (``format`` 1)::

    {"format": 1, "active": 2,
     "keys": [{"version": 1, "created": "...", "retired": "...", "key": null},
              {"version": 2, "created": "...", "retired": null, "key": "<base64>"}]}

Retiring a version deletes its key material but keeps the record, so an unwrap that needs
it fails with a message saying so rather than "unknown key".
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import stat
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.errors import IntegrityError, KeyUnavailable, StorageError
from storage.keyprovider import (
    DATA_KEY_BYTES,
    KeyContext,
    KeyProvider,
    WrappedKey,
    canonical_context,
)

KEYRING_FORMAT = 1
NONCE_BYTES = 12


@dataclass
class KekVersion:
    """One master key of the keyring; ``key`` is ``None`` once retired."""

    version: int
    created: str
    retired: str | None = None
    key: bytes | None = None

    @property
    def active_material(self) -> bytes:
        if self.key is None:
            raise KeyUnavailable(
                f"key-encryption key version {self.version} was retired on {self.retired}; "
                "data keys still wrapped by it cannot be unwrapped"
            )
        return self.key


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _new_version(version: int) -> KekVersion:
    return KekVersion(version=version, created=_now(), key=secrets.token_bytes(DATA_KEY_BYTES))


class LocalKeyring(KeyProvider):
    """Key provider backed by a keyring file (or keyring JSON given by the environment)."""

    name = "local"

    def __init__(self, path: Path | None = None, *, document: str | None = None) -> None:
        if (path is None) == (document is None):
            raise ValueError("give exactly one of a keyring path or a keyring document")
        self._path = path
        self._lock = threading.RLock()
        self._versions: dict[int, KekVersion] = {}
        self._active = 0
        self._loaded_stamp: tuple[int, int, int] | None = None
        if document is not None:
            self._load(document)
        else:
            self._reload()

    # -- creating and loading ------------------------------------------------------------

    @staticmethod
    def ensure(path: Path) -> bool:
        """Create a keyring with one fresh master key at ``path`` (mode 0600) unless present.

        Returns
        -------
        bool
            ``True`` when the file was created, ``False`` when it already existed.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        document = _dump(active=1, versions=[_new_version(1)])
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(document)
            handle.flush()
            os.fsync(handle.fileno())
        return True

    def _read_file(self) -> str:
        assert self._path is not None
        try:
            mode = self._path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeyUnavailable(
                    f"keyring {self._path} is accessible to other users "
                    f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {self._path}"
                )
            return self._path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise KeyUnavailable(
                f"keyring {self._path} does not exist; run `portal init` to create it"
            ) from exc
        except OSError as exc:
            raise KeyUnavailable(f"keyring {self._path} cannot be read: {exc}") from exc

    def _load(self, document: str) -> None:
        try:
            data = json.loads(document)
            if data.get("format") != KEYRING_FORMAT:
                raise KeyUnavailable(f"keyring has unsupported format {data.get('format')!r}")
            versions = {int(item["version"]): _parse_version(item) for item in data["keys"]}
            active = int(data["active"])
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyUnavailable(f"keyring is malformed: {exc}") from exc
        if active not in versions or versions[active].key is None:
            raise KeyUnavailable(f"keyring's active version {active} has no key material")
        self._versions, self._active = versions, active

    # -- KeyProvider ---------------------------------------------------------------------

    @property
    def active_version(self) -> int:
        """The KEK version new data keys are wrapped with."""
        return self._active

    def versions(self) -> list[KekVersion]:
        """Every KEK version, oldest first, without key material."""
        return [
            KekVersion(version=v.version, created=v.created, retired=v.retired)
            for v in sorted(self._versions.values(), key=lambda v: v.version)
        ]

    def generate_data_key(self, *, context: KeyContext) -> tuple[bytes, bytes]:
        """Draw a random data key and wrap it under the active KEK."""
        self._refresh()
        data_key = secrets.token_bytes(DATA_KEY_BYTES)
        return data_key, self._wrap(data_key, context)

    def unwrap(self, wrapped: bytes, *, context: KeyContext) -> bytes:
        """Unwrap with the KEK version the envelope names (see :class:`KeyProvider`)."""
        envelope = self.parse(wrapped)
        self._refresh()
        kek = self._kek(_version_of(envelope)).active_material
        nonce, sealed = envelope.payload[:NONCE_BYTES], envelope.payload[NONCE_BYTES:]
        aad = _aad(envelope.kek_id, context)
        try:
            data_key = AESGCM(kek).decrypt(nonce, sealed, aad)
        except (InvalidTag, ValueError) as exc:
            raise IntegrityError(
                "data key could not be unwrapped: it belongs to another case, was wrapped "
                "by a different keyring, or is corrupt"
            ) from exc
        return data_key

    def rewrap(self, wrapped: bytes, *, context: KeyContext) -> bytes:
        """Unwrap and wrap again under the active KEK version."""
        data_key = self.unwrap(wrapped, context=context)
        return self._wrap(data_key, context)

    def check(self) -> None:
        """Raise :class:`KeyUnavailable` unless the keyring is readable and has an active key."""
        if self._path is not None:
            with self._lock:
                self._reload()
        self._kek(self._active).active_material  # noqa: B018 - raises when retired

    # -- rotation ------------------------------------------------------------------------

    def rotate(self) -> int:
        """Add a new KEK version, make it active and save; returns the new version."""
        with self._lock:
            self._reload_for_update()
            version = max(self._versions) + 1
            self._versions[version] = _new_version(version)
            self._active = version
            self._save()
        return version

    def retire(self, version: int) -> None:
        """Destroy the key material of ``version`` (never the active one) and save."""
        with self._lock:
            self._reload_for_update()
            kek = self._kek(version)
            if version == self._active:
                raise StorageError(f"KEK version {version} is active; rotate before retiring it")
            kek.key, kek.retired = None, kek.retired or _now()
            self._save()

    # -- internals -----------------------------------------------------------------------

    def _wrap(self, data_key: bytes, context: KeyContext) -> bytes:
        kek_id = str(self._active)
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self._kek(self._active).active_material).encrypt(
            nonce, data_key, _aad(kek_id, context)
        )
        return WrappedKey(provider=self.name, kek_id=kek_id, payload=nonce + sealed).encode()

    def _kek(self, version: int) -> KekVersion:
        try:
            return self._versions[version]
        except KeyError:
            raise KeyUnavailable(
                f"key-encryption key version {version} is not in the keyring"
            ) from None

    def _reload_for_update(self) -> None:
        if self._path is None:
            raise StorageError("the keyring came from the environment and is read-only")
        self._reload()

    def _reload(self) -> None:
        stamp = self._stamp()  # before reading: a change during the read triggers a reload
        self._load(self._read_file())
        self._loaded_stamp = stamp

    def _refresh(self) -> None:
        """Reload when the file changed: ``portal keys rotate`` runs in another process."""
        if self._path is not None and self._stamp() != self._loaded_stamp:
            with self._lock:
                self._reload()

    def _stamp(self) -> tuple[int, int, int] | None:
        assert self._path is not None
        try:
            info = self._path.stat()
        except OSError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def _save(self) -> None:
        assert self._path is not None
        document = _dump(active=self._active, versions=list(self._versions.values()))
        fd, temp = tempfile.mkstemp(dir=self._path.parent, prefix=".keyring-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp makes it 0600
                handle.write(document)
                handle.flush()
                os.fsync(handle.fileno())
            Path(temp).replace(self._path)
            self._loaded_stamp = self._stamp()
        except BaseException:
            with contextlib.suppress(OSError):
                Path(temp).unlink()
            raise


def _aad(kek_id: str, context: KeyContext) -> bytes:
    return b"portal-keyring-v1\x00" + kek_id.encode("ascii") + b"\x00" + canonical_context(context)


def _version_of(envelope: WrappedKey) -> int:
    try:
        return int(envelope.kek_id)
    except ValueError:
        raise IntegrityError(
            f"wrapped key names an invalid KEK version {envelope.kek_id!r}"
        ) from None


def _parse_version(item: dict[str, Any]) -> KekVersion:
    key = item.get("key")
    material = base64.b64decode(key, validate=True) if key else None
    if material is not None and len(material) != DATA_KEY_BYTES:
        raise ValueError(f"version {item['version']} key is not {DATA_KEY_BYTES} bytes")
    return KekVersion(
        version=int(item["version"]),
        created=str(item.get("created", "")),
        retired=item.get("retired"),
        key=material,
    )


def _dump(*, active: int, versions: list[KekVersion]) -> str:
    keys = [
        {
            "version": v.version,
            "created": v.created,
            "retired": v.retired,
            "key": base64.b64encode(v.key).decode("ascii") if v.key else None,
        }
        for v in sorted(versions, key=lambda v: v.version)
    ]
    return json.dumps({"format": KEYRING_FORMAT, "active": active, "keys": keys}, indent=2) + "\n"
