"""The keys side of a backup: copy the keyring, and prove a keyring opens every case key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from portal.backup.errors import RestoreRefused
from portal.backup.manifest import KeysPart, Manifest, write_new_file
from portal.backup.snapshot import CaseKeyRow
from storage.errors import StorageError
from storage.keyprovider import KeyProvider, WrappedKey
from storage.keyring import LocalKeyring
from storage.keys import build_key_provider
from storage.settings import StorageSettings
from storage.vault import key_context

KEYRING_FILE = "keyring.json"


@dataclass(frozen=True)
class KeyFailure:
    """A case key the provider could not unwrap, and what it said."""

    case_id: str
    reason: str


def unopenable(provider: KeyProvider, case_keys: list[CaseKeyRow]) -> list[KeyFailure]:
    """Every case key ``provider`` cannot unwrap (empty: all of them open)."""
    failures = []
    for row in case_keys:
        try:
            provider.unwrap(row.wrapped_key, context=key_context(row.case_id))
        except StorageError as exc:
            failures.append(KeyFailure(row.case_id, str(exc)))
    return failures


def describe_failures(failures: list[KeyFailure], total: int) -> str:
    """One sentence naming how many keys failed and why the first did."""
    first = failures[0]
    return (
        f"the keys do not open {len(failures)} of {total} case keys "
        f"(case {first.case_id}: {first.reason})"
    )


def copy_keys(
    settings: StorageSettings, directory: Path, case_keys: list[CaseKeyRow], *, with_keyring: bool
) -> KeysPart:
    """Copy the local keyring (0600) into the backup; for KMS, record the key ARNs only."""
    kek_ids = sorted({WrappedKey.decode(row.wrapped_key).kek_id for row in case_keys})
    if settings.key_provider == "kms":
        return KeysPart(
            provider="kms",
            file=None,
            kek_ids=kek_ids,
            kms_key_id=settings.kms_key_id,
            case_keys=len(case_keys),
        )
    file = None
    if with_keyring:
        write_new_file(directory / KEYRING_FILE, _local_keyring_document(settings))
        file = KEYRING_FILE
    return KeysPart(provider="local", file=file, kek_ids=kek_ids, case_keys=len(case_keys))


def _local_keyring_document(settings: StorageSettings) -> bytes:
    if settings.keyring is not None:
        return settings.keyring.get_secret_value().encode("utf-8")
    return settings.keyring_path.read_bytes()


@dataclass(frozen=True)
class RestoreKeys:
    """The provider a restore checks the case keys with, and the keyring file to install."""

    provider: KeyProvider
    install: bytes | None
    """Keyring bytes to write to ``keyring_path`` (``None``: nothing to write)."""


def keys_for_restore(
    settings: StorageSettings, manifest: Manifest, directory: Path, keyring_file: Path | None
) -> RestoreKeys:
    """Which keys the restored portal will use, checked before anything is written.

    KMS or a keyring given by the environment: those, as configured. A local keyring file:
    ``--keyring FILE``, else the backup's copy, else the one already at ``keyring_path``;
    a different keyring already at ``keyring_path`` is never overwritten.
    """
    try:
        if settings.key_provider == "kms" or settings.keyring is not None:
            return RestoreKeys(build_key_provider(settings), install=None)
        source = keyring_file or (directory / manifest.keys.file if manifest.keys.file else None)
        present = settings.keyring_path.read_bytes() if settings.keyring_path.exists() else None
        if source is None:
            if present is None:
                raise RestoreRefused(
                    "the backup holds no keyring and none is configured; "
                    "give it with --keyring FILE"
                )
            return RestoreKeys(LocalKeyring(document=present.decode("utf-8")), install=None)
        document = source.read_bytes()
        if present is not None and present != document:
            raise RestoreRefused(
                f"a different keyring already exists at {settings.keyring_path}; move it away "
                "or set PORTAL_STORAGE_KEYRING_PATH to a new file"
            )
        provider = LocalKeyring(document=document.decode("utf-8"))
        return RestoreKeys(provider, install=None if present is not None else document)
    except (StorageError, OSError, UnicodeDecodeError) as exc:
        raise RestoreRefused(f"the keyring cannot be used: {exc}") from exc


def install_keyring(settings: StorageSettings, document: bytes) -> Path:
    """Write the keyring to ``keyring_path`` (0600, never over an existing file)."""
    settings.keyring_path.parent.mkdir(parents=True, exist_ok=True)
    write_new_file(settings.keyring_path, document)
    return settings.keyring_path
