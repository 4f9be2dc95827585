"""Objects a killed process left behind: stored without a row, or a multipart upload half sent.

An object is always stored before the row that vouches for it is committed, so a database row
never names an object that is not there. The price is the other direction: a process killed
between the object's PUT and the row's commit (or in the middle of a multipart upload) leaves
bytes nobody refers to. They are ciphertext under the case's key, so they leak nothing, but
they take space, outlive an erasure's listing and make ``portal storage scrub`` report them.

Housekeeping removes them once they are older than a grace period. Younger objects may belong
to work still in progress in another process: an upload validating before its commit, or a
ZIP archive whose entries are being ingested (the archive itself never gets a row and is
deleted when its entries are done). The grace period must be longer than any such work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from portal.db import begin_read_only, utcnow
from portal.objects.models import StoredObject
from storage.vault import Vault, parse_object_key

log = logging.getLogger(__name__)

_LOOKUP_BATCH = 500


@dataclass
class OrphanReport:
    """What one pass removed, and what it left because it was too young to judge."""

    objects_removed: int = 0
    uploads_aborted: int = 0
    too_young: int = 0


def remove_orphans(
    *, session: Session, vault: Vault, grace: timedelta, now: datetime | None = None
) -> OrphanReport:
    """Delete stored objects without a row and abort unfinished multipart uploads.

    Only what was written before ``now - grace`` is touched. Objects are listed first and
    rows looked up afterwards, so a row committed while the bucket was being listed is seen.
    """
    cutoff = (now or utcnow()) - grace
    report = OrphanReport()
    old: list[str] = []
    for info in vault.list_objects():
        if info.last_modified is None or info.last_modified > cutoff:
            report.too_young += 1
        elif _is_vault_key(info.key):
            old.append(info.key)
    for start in range(0, len(old), _LOOKUP_BATCH):
        batch = old[start : start + _LOOKUP_BATCH]
        begin_read_only(session)
        known = set(
            session.exec(
                select(StoredObject.object_key).where(col(StoredObject.object_key).in_(batch))
            ).all()
        )
        session.commit()
        for object_key in batch:
            if object_key not in known:
                vault.delete(object_key)
                report.objects_removed += 1
    for pending in vault.pending_uploads():
        initiated = pending.initiated
        if initiated is not None and initiated <= cutoff and _is_vault_key(pending.key):
            vault.abort_upload(pending)
            report.uploads_aborted += 1
    if report.objects_removed or report.uploads_aborted:
        log.info(
            "removed %d orphaned object(s), aborted %d unfinished upload(s)",
            report.objects_removed,
            report.uploads_aborted,
        )
    return report


def _is_vault_key(object_key: str) -> bool:
    try:
        parse_object_key(object_key)
    except ValueError:
        return False
    return True
