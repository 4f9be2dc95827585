"""``portal backup DIR`` and ``portal restore DIR``: run the service, print what it did."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.backup.errors import BackupError
from portal.backup.service import create_backup, restore_backup
from portal.db import create_db_engine, session_scope
from portal.settings import Settings
from storage.errors import StorageError, StorageUnavailable
from storage.objectstore import S3ObjectStore, build_s3_client

CLI = AuditContext(actor_role="operator")


def backup(settings: Settings, directory: Path, *, with_objects: bool, with_keyring: bool) -> int:
    """Back up into ``directory``; exit code 0, or 1 with the reason on stderr."""
    from portal.storage_commands import opened

    try:
        with opened(settings) as (engine, vault):
            report = create_backup(
                settings=settings,
                engine=engine,
                vault=vault,
                directory=directory,
                with_objects=with_objects,
                with_keyring=with_keyring,
            )
            with session_scope(engine) as session:
                audit_service.record(
                    session=session,
                    ctx=CLI,
                    action="backup.create",
                    details={
                        "manifest_sha256": report.manifest_sha256,
                        "objects": report.manifest.objects.count,
                        "objects_included": with_objects,
                    },
                )
    except (BackupError, StorageError, OSError) as exc:
        return _failed("backup", exc)
    manifest = report.manifest
    print(f"backup written to {directory}")
    rows = manifest.database.table_rows
    print(
        f"  database: {manifest.database.backend}, schema {manifest.schema_revision}, "
        f"{sum(rows.values())} rows in {len(rows)} tables"
    )
    print(
        f"  case keys: {manifest.keys.case_keys} ({manifest.keys.provider}; keyring file: "
        f"{manifest.keys.file or 'not included'})"
    )
    copied = "copied" if manifest.objects.included else "listed (not copied)"
    print(f"  objects: {manifest.objects.count} {copied}, {manifest.objects.stored_bytes} bytes")
    print(f"  manifest SHA-256: {report.manifest_sha256} (keep it apart from the backup)")
    return 0


def restore(
    settings: Settings,
    directory: Path,
    *,
    keyring_file: Path | None,
    manifest_sha256: str | None,
    erase_again: Path | None = None,
) -> int:
    """Restore ``directory`` into the configured (empty) database and bucket."""
    try:
        erased = read_case_ids(erase_again) if erase_again is not None else []
    except BackupError as exc:
        return _failed("restore", exc)
    engine = create_db_engine(settings.database_url)
    try:
        with embedded_storage(settings):
            report = restore_backup(
                settings=settings,
                engine=engine,
                directory=directory,
                keyring_file=keyring_file,
                manifest_sha256=manifest_sha256,
                erase_again=erased,
            )
            with session_scope(engine) as session:
                audit_service.record(
                    session=session,
                    ctx=CLI,
                    action="backup.restore",
                    details={
                        "backup_created_at": report.manifest.created_at.isoformat(),
                        "objects": report.objects_verified,
                    },
                )
    except (BackupError, StorageError, OSError) as exc:
        return _failed("restore", exc)
    finally:
        engine.dispose()
    print(f"restored {directory}")
    print(
        f"  database: {sum(report.table_rows.values())} rows in {len(report.table_rows)} tables, "
        "as many as backed up"
    )
    if report.migrated_to:
        print(f"  schema migrated to {report.migrated_to}")
    print(f"  case keys: {report.case_keys}, every one opened by the keys")
    if report.keyring_installed:
        print(f"  keyring installed at {report.keyring_installed}")
    print(
        f"  objects: {report.objects_restored} restored, {report.objects_verified} verified "
        "against the manifest"
    )
    if erase_again is not None:
        print(f"  erased again: {len(report.erased_again)} of {len(erased)} listed case(s)")
    print("next: `portal storage scrub` and `portal audit verify`")
    return 0


def read_case_ids(path: Path) -> list[uuid.UUID]:
    """Case ids, one a line (blank lines and ``#`` comments ignored)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BackupError(f"cannot read the list of erased cases {path}: {exc}") from exc
    case_ids = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            case_ids.append(uuid.UUID(text))
        except ValueError:
            raise BackupError(f"{path} line {number} is not a case id") from None
    return case_ids


@contextmanager
def embedded_storage(settings: Settings) -> Iterator[None]:
    """Start the embedded SeaweedFS for the command when it is configured and not running."""
    from portal.runner import embedded_s3_for, is_loopback

    with ExitStack() as stack:
        store = S3ObjectStore(build_s3_client(settings.storage), bucket=settings.storage.bucket)
        try:
            store.is_empty()
        except StorageUnavailable:
            if not (settings.storage.embedded and is_loopback(settings.storage.endpoint_url)):
                raise
            stack.enter_context(embedded_s3_for(settings))
        yield


def _failed(command: str, exc: Exception) -> int:
    print(f"portal: {command} failed: {exc}", file=sys.stderr)
    return 1
