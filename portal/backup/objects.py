"""Encrypted objects: copy them out with their checksums, put them back, verify them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from portal.backup.errors import BackupError
from portal.backup.manifest import OBJECTS_DIR, ObjectEntry
from storage.errors import ObjectNotFound
from storage.vault import Vault


def copy_out(
    vault: Vault, directory: Path, objects: list[tuple[str, int]], *, keep: bool
) -> list[ObjectEntry]:
    """Checksum every object the database names; with ``keep``, store a copy under ``directory``.

    Raises
    ------
    BackupError
        An object is missing, or its stored size is not the one its row records.
    """
    entries, missing = [], []
    for key, stored_size in objects:
        try:
            head, chunks = vault.export_object(key)
        except ObjectNotFound:
            missing.append(key)
            continue
        digest, size = _save(chunks, directory / OBJECTS_DIR / key if keep else None)
        if size != stored_size or size != head.size:
            raise BackupError(
                f"object {key} has {size} bytes in the bucket but its row records {stored_size}"
            )
        entries.append(ObjectEntry(key=key, size=size, sha256=digest, etag=head.etag))
    if missing:
        raise BackupError(
            f"{len(missing)} object(s) the database names are not in the bucket "
            f"(first: {missing[0]}); run `portal storage scrub`, then back up again"
        )
    return entries


def put_back(vault: Vault, directory: Path, entries: list[ObjectEntry]) -> Iterator[str]:
    """Store each object's copy under its own key and verify it; yields each key once stored."""
    for entry in entries:
        vault.import_object(entry.key, _read(directory / entry.file))
        yield entry.key
        check_stored(vault, entry)


def check_stored(vault: Vault, entry: ObjectEntry) -> None:
    """Read an object back from the bucket and compare it with its manifest entry."""
    try:
        _, chunks = vault.export_object(entry.key)
    except ObjectNotFound:
        raise BackupError(f"object {entry.key} is not in the bucket") from None
    digest, size = _save(chunks, None)
    if (digest, size) != (entry.sha256, entry.size):
        raise BackupError(
            f"object {entry.key} in the bucket is not the object in the backup "
            "(size or SHA-256 differs)"
        )


def _save(chunks: Iterable[bytes], target: Path | None) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    handle = None
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
    try:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            if handle is not None:
                handle.write(chunk)
        if handle is not None:
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        if handle is not None:
            handle.close()
    return digest.hexdigest(), size


def _read(path: Path, size: int = 1024 * 1024) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(size):
            yield chunk
