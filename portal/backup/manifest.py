"""The backup manifest: what a backup directory holds and the checksum of every byte of it.

``manifest.json`` names the database dump, the keyring copy (local keyring only) and
``objects.jsonl``, each with its size and SHA-256; ``objects.jsonl`` names every encrypted
object with its stored size, the SHA-256 of its stored bytes and its S3 ETag. Nothing in
either file is secret: object keys are opaque ids, kek ids are versions or KMS key ARNs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from portal.backup.errors import BackupDamaged

FORMAT = "portal-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
OBJECTS_MANIFEST = "objects.jsonl"
OBJECTS_DIR = "objects"
READ_SIZE = 1024 * 1024
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class FileEntry(BaseModel):
    """Size and SHA-256 of one file of the backup."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ObjectEntry(BaseModel):
    """One encrypted object: its key, stored size, SHA-256 of the stored bytes and ETag."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(pattern=r"^cases/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}/[0-9a-f]{32}$")
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    etag: str = Field(max_length=200)

    @property
    def file(self) -> str:
        """Where the copy lives inside the backup directory."""
        return f"{OBJECTS_DIR}/{self.key}"


class DatabasePart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["sqlite", "postgresql"]
    file: str
    server_version: str | None = None
    table_rows: dict[str, int]
    """Rows per table in the snapshot; a restore must come back with exactly these."""


class KeysPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: Literal["local", "kms"]
    file: str | None
    """The keyring copy (local keyring); ``None`` for KMS or when left out on purpose."""
    kek_ids: list[str]
    """The key-encryption keys the case keys are wrapped under (versions or KMS key ARNs)."""
    kms_key_id: str | None = None
    """The KMS key new data keys were made under (KMS only; an id or ARN, not a secret)."""
    case_keys: int


class ObjectsPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    included: bool
    """False for ``--no-objects``: the bucket's own replica holds them; this lists them."""
    count: int
    stored_bytes: int


class Manifest(BaseModel):
    """``manifest.json``."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["portal-backup"] = "portal-backup"
    format_version: int = FORMAT_VERSION
    created_at: datetime
    schema_revision: str = Field(pattern=r"^[0-9A-Za-z_]{1,64}$")
    database: DatabasePart
    keys: KeysPart
    objects: ObjectsPart
    files: dict[str, FileEntry]
    """Every file of the backup except the object copies, which ``objects.jsonl`` covers."""

    @model_validator(mode="after")
    def _names_only_its_own_files(self) -> Self:
        """Every file the manifest points at is a checksummed file at the top of the backup."""
        named = [self.database.file, OBJECTS_MANIFEST, self.keys.file]
        for name in [*self.files, *(name for name in named if name is not None)]:
            if not _FILE_NAME.fullmatch(name) or name == MANIFEST:
                raise ValueError(f"{name!r} is not a file name of a backup")
        missing = [name for name in named if name is not None and name not in self.files]
        if missing:
            raise ValueError(f"{missing[0]} has no checksum in the manifest")
        return self


def digest_file(path: Path) -> FileEntry:
    """Size and SHA-256 of a file, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while chunk := handle.read(READ_SIZE):
            digest.update(chunk)
            size += len(chunk)
    return FileEntry(size=size, sha256=digest.hexdigest())


def write_manifest(directory: Path, manifest: Manifest) -> str:
    """Write ``manifest.json`` (0600); returns its SHA-256 for the operator to keep apart."""
    body = manifest.model_dump_json(indent=2).encode("utf-8") + b"\n"
    write_new_file(directory / MANIFEST, body)
    return hashlib.sha256(body).hexdigest()


def write_new_file(path: Path, body: bytes) -> None:
    """Create ``path`` (mode 0600, never over an existing file) holding ``body``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())


def read_manifest(directory: Path) -> tuple[Manifest, str]:
    """The manifest of a backup directory and its SHA-256.

    Raises
    ------
    BackupDamaged
        There is no manifest, or it is not one this portal understands.
    """
    path = directory / MANIFEST
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        raise BackupDamaged(f"{directory} is not a portal backup: it has no {MANIFEST}") from None
    try:
        data = json.loads(body)
        if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise BackupDamaged(f"{path} is not a portal backup of format version {FORMAT_VERSION}")
        return Manifest.model_validate(data), hashlib.sha256(body).hexdigest()
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "manifest"
        raise BackupDamaged(f"{path} is damaged: {where}: {problem['msg']}") from exc
    except (ValueError, AttributeError) as exc:
        raise BackupDamaged(f"{path} is damaged: it is not a valid backup manifest") from exc


def read_objects(directory: Path) -> Iterator[ObjectEntry]:
    """The entries of ``objects.jsonl`` (checked against the manifest first)."""
    with (directory / OBJECTS_MANIFEST).open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                yield ObjectEntry.model_validate_json(line)
            except ValidationError as exc:
                raise BackupDamaged(f"{OBJECTS_MANIFEST} line {number} is damaged") from exc


def verify_files(directory: Path, manifest: Manifest) -> list[ObjectEntry]:
    """Check every file of the backup against the manifest; returns the object entries.

    Raises
    ------
    BackupDamaged
        A file is missing, has other bytes than recorded, or is not named by the manifest.
    """
    expected = {MANIFEST, *manifest.files}
    for name, entry in sorted(manifest.files.items()):
        _check_file(directory, name, entry)
    objects = list(read_objects(directory)) if OBJECTS_MANIFEST in manifest.files else []
    if len(objects) != manifest.objects.count:
        raise BackupDamaged(
            f"{OBJECTS_MANIFEST} lists {len(objects)} objects but the manifest says "
            f"{manifest.objects.count}"
        )
    if manifest.objects.included:
        for item in objects:
            _check_file(directory, item.file, FileEntry(size=item.size, sha256=item.sha256))
            expected.add(item.file)
    present = {
        path.relative_to(directory).as_posix() for path in directory.rglob("*") if path.is_file()
    }
    extra = sorted(present - expected)
    if extra:
        raise BackupDamaged(
            f"the backup holds {len(extra)} file(s) its manifest does not name, e.g. {extra[0]}"
        )
    return objects


def _check_file(directory: Path, name: str, entry: FileEntry) -> None:
    path = directory / name
    if not _inside(directory, path):
        raise BackupDamaged(f"the manifest names a file outside the backup: {name}")
    if not path.is_file():
        raise BackupDamaged(f"the backup file {name} is missing")
    found = digest_file(path)
    if found != entry:
        raise BackupDamaged(
            f"the backup file {name} was altered or damaged: its size or SHA-256 is not "
            "the one recorded in the manifest"
        )


def _inside(directory: Path, path: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())
