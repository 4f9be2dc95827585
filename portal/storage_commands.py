"""Operator commands that need object storage: key rotation, scrub, case erasure."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from sqlalchemy.engine import Engine

from portal import case_erasure as erasure
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.db import create_db_engine, session_scope
from portal.errors import NotFound
from portal.objects import service as objects_service
from portal.objects.texts import bind_vault
from portal.settings import Settings
from storage.errors import StorageError, StorageUnavailable
from storage.vault import Vault, build_vault

CLI = AuditContext(actor_role="operator")


@contextmanager
def opened(settings: Settings) -> Iterator[tuple[Engine, Vault]]:
    """Engine and vault for one command; starts the embedded SeaweedFS if it is not running."""
    from portal.runner import embedded_s3_for, is_loopback

    engine = create_db_engine(settings.database_url)
    with ExitStack() as stack:
        stack.callback(engine.dispose)
        vault = build_vault(settings.storage)
        try:
            vault.check()
        except StorageUnavailable:
            if not (settings.storage.embedded and is_loopback(settings.storage.endpoint_url)):
                raise
            stack.enter_context(embedded_s3_for(settings))
        yield engine, vault


def rotate_keys(settings: Settings) -> int:
    with opened(settings) as (engine, vault), session_scope(engine) as session:
        report = objects_service.rotate_keys(session=session, vault=vault)
        audit_service.record(
            session=session,
            ctx=CLI,
            action="keys.rotate",
            details={"new_kek": report.new_kek_id, "rewrapped": report.rewrapped},
        )
    if report.new_kek_id:
        print(f"new key-encryption key version {report.new_kek_id} is active")
    print(f"re-wrapped {report.rewrapped} case key(s); now per KEK: {report.still_under}")
    return 0


def retire_kek(settings: Settings, version: int) -> int:
    with opened(settings) as (engine, vault), session_scope(engine) as session:
        try:
            objects_service.retire_kek(session=session, vault=vault, version=version)
        except (objects_service.KekStillInUse, StorageError, TypeError) as exc:
            print(f"portal: cannot retire version {version}: {exc}")
            return 1
        audit_service.record(
            session=session, ctx=CLI, action="keys.retire", details={"version": version}
        )
    print(f"key-encryption key version {version} destroyed")
    return 0


def scrub(settings: Settings) -> int:
    with opened(settings) as (engine, vault), session_scope(engine) as session:
        report = objects_service.scrub_storage(session=session, vault=vault)
    print(f"storage scrub: {report.summary()}")
    for object_key in report.missing:
        print(f"  missing   {object_key}")
    for corrupt in report.corrupt:
        print(f"  corrupt   {corrupt.object_key}: {corrupt.reason}")
    for object_key in report.orphaned:
        print(f"  orphaned  {object_key}")
    return 0 if report.clean else 1


def erase_case(settings: Settings, case_id: str) -> int:
    try:
        case_uuid = uuid.UUID(case_id)
    except ValueError:
        print(f"portal: {case_id!r} is not a case id")
        return 2
    with opened(settings) as (engine, vault), session_scope(engine) as session:
        try:
            report = erasure.erase_case(session=session, vault=vault, ctx=CLI, case_id=case_uuid)
        except NotFound:
            print(f"portal: no case {case_id}")
            return 1
    print(
        f"erased case {report.reference}: data key destroyed={report.key_destroyed}, "
        f"{report.objects_deleted} object(s) deleted"
    )
    return 0


def seal_text(settings: Settings) -> int:
    """Seal the free text the upgrade to sealed columns set aside (also done at start-up)."""
    from portal import legacy_text

    with opened(settings) as (engine, vault), session_scope(engine) as session:
        sealed = legacy_text.seal_pending(session=bind_vault(session, vault))
    print(f"sealed {sealed} text value(s); none is left in clear")
    return 0


def sweep(settings: Settings, *, mail: bool = True) -> int:
    """Housekeeping safe to run from cron, also in several processes at once (one runs)."""
    from portal import housekeeping

    with opened(settings) as (engine, vault):
        report = housekeeping.run_once(engine=engine, vault=vault, settings=settings, mail=mail)
    print(report or "another process is running housekeeping; this pass was skipped")
    return 0
