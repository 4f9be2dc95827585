"""Back up and restore the whole portal: database, keyring and every encrypted object.

A backup is a directory (see docs/backup.md): the database dump, the keyring copy, and the
object copies, all named with size and SHA-256 by ``manifest.json`` and ``objects.jsonl``.
A restore checks all of it, and that the keys open every case key, before it writes anything.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Engine
from sqlmodel import Session

from portal import case_erasure as erasure
from portal import migrate
from portal.audit.service import AuditContext
from portal.backup import database, keys, objects
from portal.backup.errors import BackupDamaged, BackupError, RestoreRefused
from portal.backup.manifest import (
    OBJECTS_MANIFEST,
    Manifest,
    ObjectEntry,
    ObjectsPart,
    digest_file,
    read_manifest,
    verify_files,
    write_manifest,
    write_new_file,
)
from portal.backup.snapshot import Snapshot, read_snapshot
from portal.cases.models import Case
from portal.db import utcnow
from portal.settings import Settings
from storage.vault import Vault, build_vault

RESTORE = AuditContext(actor_role="operator")


@dataclass(frozen=True)
class BackupReport:
    """What a backup wrote: its manifest and the manifest's SHA-256 (keep it apart)."""

    directory: Path
    manifest: Manifest
    manifest_sha256: str


def create_backup(
    *,
    settings: Settings,
    engine: Engine,
    vault: Vault,
    directory: Path,
    with_objects: bool = True,
    with_keyring: bool = True,
) -> BackupReport:
    """Back up the database, the keys and the objects into the new or empty ``directory``.

    Raises
    ------
    BackupError
        The directory is not empty, a tool failed, the configured keys do not open every case
        key, or an object is missing. Whatever was written into ``directory`` is removed.
    """
    _prepare(directory)
    try:
        part, snapshot = database.dump(engine, directory, pg_bin_dir=settings.backup_pg_bin_dir)
        failures = keys.unopenable(vault.keys, snapshot.case_keys)
        if failures:
            raise BackupError(keys.describe_failures(failures, len(snapshot.case_keys)))
        keys_part = keys.copy_keys(
            settings.storage, directory, snapshot.case_keys, with_keyring=with_keyring
        )
        entries = objects.copy_out(vault, directory, snapshot.objects, keep=with_objects)
        _write_objects_manifest(directory, entries)
        manifest = Manifest(
            created_at=utcnow(),
            schema_revision=snapshot.schema_revision,
            database=part,
            keys=keys_part,
            objects=ObjectsPart(
                included=with_objects,
                count=len(entries),
                stored_bytes=sum(entry.size for entry in entries),
            ),
            files={
                path.name: digest_file(path)
                for path in sorted(directory.iterdir())
                if path.is_file()
            },
        )
        digest = write_manifest(directory, manifest)
    except BaseException:
        _empty(directory)
        raise
    return BackupReport(directory, manifest, digest)


@dataclass
class RestoreReport:
    """What a restore put back."""

    manifest: Manifest
    case_keys: int
    objects_restored: int = 0
    objects_verified: int = 0
    keyring_installed: Path | None = None
    migrated_to: str | None = None
    erased_again: list[uuid.UUID] = field(default_factory=list)
    table_rows: dict[str, int] = field(default_factory=dict)


def restore_backup(
    *,
    settings: Settings,
    engine: Engine,
    directory: Path,
    keyring_file: Path | None = None,
    manifest_sha256: str | None = None,
    erase_again: Sequence[uuid.UUID] = (),
) -> RestoreReport:
    """Restore a backup into an empty database and an empty bucket.

    Everything is checked first: the files against the manifest (and the manifest against
    ``manifest_sha256`` when given), the schema revision, that the database and bucket are
    empty, and that the keys open every case key in the dump. Then objects (each read back
    and compared), the keyring, and last the database, in one step. Cases in
    ``erase_again`` (erased after the backup was made) are erased again at once.

    Raises
    ------
    BackupDamaged
        A file of the backup is missing, altered or unexpected; nothing was written.
    RestoreRefused
        The target is not empty, or the keys do not open every case key; nothing was written.
    BackupError
        Writing failed: the objects and keyring written so far are removed again. Or the
        restored database has other row counts than the manifest: it is left for inspection.
    """
    manifest, digest = read_manifest(directory)
    if manifest_sha256 is not None and manifest_sha256.lower() != digest:
        raise BackupDamaged("the manifest is not the one whose SHA-256 was given")
    entries = verify_files(directory, manifest)
    _check_revision(engine, manifest.schema_revision)
    database.check_target(engine, manifest.database)
    chosen = keys.keys_for_restore(settings.storage, manifest, directory, keyring_file)
    vault = build_vault(settings.storage, keys=chosen.provider)
    if manifest.objects.included and not vault.bucket_is_empty():
        raise RestoreRefused(
            f"the bucket {settings.storage.bucket!r} is not empty; restore into a new bucket"
        )
    case_keys = database.case_keys_in_dump(
        manifest.database, directory, pg_bin_dir=settings.backup_pg_bin_dir
    )
    if len(case_keys) != manifest.keys.case_keys:
        raise BackupDamaged("the dump holds other case keys than the manifest records")
    failures = keys.unopenable(chosen.provider, case_keys)
    if failures:
        raise RestoreRefused(keys.describe_failures(failures, len(case_keys)))

    report = RestoreReport(manifest=manifest, case_keys=len(case_keys))
    _write(settings, engine, vault, directory, entries, chosen, report)
    report.erased_again = _erase_again(engine, vault, erase_again)
    return report


def _erase_again(engine: Engine, vault: Vault, case_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """Erase the listed cases the backup still holds; returns those erased."""
    erased = []
    with Session(engine, expire_on_commit=False) as session:
        for case_id in case_ids:
            if session.get(Case, case_id) is None:
                continue
            erasure.erase_case(session=session, vault=vault, ctx=RESTORE, case_id=case_id)
            erased.append(case_id)
    return erased


def _write(
    settings: Settings,
    engine: Engine,
    vault: Vault,
    directory: Path,
    entries: list[ObjectEntry],
    chosen: keys.RestoreKeys,
    report: RestoreReport,
) -> None:
    stored: list[str] = []
    try:
        if report.manifest.objects.included:
            vault.ensure_bucket()
            for key in objects.put_back(vault, directory, entries):
                stored.append(key)
            report.objects_restored = len(stored)
        else:
            for entry in entries:  # the bucket is a replica: it must hold exactly these
                objects.check_stored(vault, entry)
        report.objects_verified = len(entries)
        if chosen.install is not None:
            report.keyring_installed = keys.install_keyring(settings.storage, chosen.install)
        database.restore(
            report.manifest.database, directory, engine, pg_bin_dir=settings.backup_pg_bin_dir
        )
    except BaseException:
        for key in stored:
            with contextlib.suppress(Exception):
                vault.delete(key)
        if report.keyring_installed is not None:
            report.keyring_installed.unlink(missing_ok=True)
        raise
    report.table_rows = _restored_rows(engine, report.manifest)
    if report.manifest.schema_revision != _head(engine):
        migrate.upgrade(engine)
        report.migrated_to = _head(engine)


def _restored_rows(engine: Engine, manifest: Manifest) -> dict[str, int]:
    with engine.connect() as connection:
        snapshot: Snapshot = read_snapshot(connection)
    if snapshot.table_rows != manifest.database.table_rows:
        differ = sorted(
            name
            for name in {*snapshot.table_rows, *manifest.database.table_rows}
            if snapshot.table_rows.get(name) != manifest.database.table_rows.get(name)
        )
        raise BackupError(
            f"the restored database has other row counts than the backup in: {', '.join(differ)}"
        )
    return snapshot.table_rows


def _check_revision(engine: Engine, revision: str) -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config(engine))
    try:
        known = script.get_revision(revision) is not None
    except CommandError:
        known = False
    if not known:
        raise RestoreRefused(
            f"the backup's schema revision {revision} is unknown to this portal version; "
            "restore with the portal version that made it (or a newer one)"
        )


def _head(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(migrate.alembic_config(engine)).get_current_head()


def _prepare(directory: Path) -> None:
    if directory.exists():
        if not directory.is_dir() or any(directory.iterdir()):
            raise BackupError(f"{directory} is not an empty directory; back up into a new one")
    else:
        directory.mkdir(parents=True, mode=0o700)
    directory.chmod(0o700)


def _write_objects_manifest(directory: Path, entries: list[ObjectEntry]) -> None:
    lines = b"".join(entry.model_dump_json().encode("utf-8") + b"\n" for entry in entries)
    write_new_file(directory / OBJECTS_MANIFEST, lines)


def _empty(directory: Path) -> None:
    """Remove what a failed backup wrote (the directory was empty before)."""
    for path in directory.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
