"""Periodic housekeeping: the review sweep, mail delivery, expired uploads, sign-in
failures and crash leftovers.

``portal sweep`` runs it once (from cron); the server runs it every
``sweep_interval_seconds`` unless ``sweep_enabled`` is off. However many replicas run it,
one pass at a time runs cluster-wide (``portal.cluster``): a replica that finds the lock
taken skips its pass. The audit sealer goes first, so the chain is never more than one
interval behind. The search for crash leftovers lists the whole bucket, so it is not part of
every pass: it takes a turn once per ``orphan_interval_seconds`` cluster-wide.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

import anyio
from sqlalchemy.engine import Engine

from portal import cluster
from portal.accounts import password_reset, second_step, throttle
from portal.audit import sealer
from portal.audit import service as audit_service
from portal.db import session_scope, utcnow
from portal.jobs import service as jobs
from portal.notifications import service as notifications
from portal.notifications.service import DeliveryReport
from portal.objects import orphans
from portal.objects.orphans import OrphanReport
from portal.sealing import SecretBox
from portal.settings import Settings
from reviewers.sweep import SweepReport, sweep
from storage.vault import Vault

log = logging.getLogger(__name__)

HOUSEKEEPING_LOCK = "housekeeping"
ORPHAN_TURN = "objects.orphans"
"""The orphan pass lists every object in the bucket: it takes a turn per
``orphan_interval_seconds`` cluster-wide, not one per pass."""


@dataclass
class HousekeepingReport:
    review: SweepReport
    mail: DeliveryReport
    expired_uploads: int
    finished_uploads: int = 0
    orphans: OrphanReport = field(default_factory=OrphanReport)
    audit_sealed: int = 0

    def __str__(self) -> str:
        return (
            f"{self.audit_sealed} audit row(s) sealed; {self.review}; "
            f"mail: {self.mail.sent} sent, {self.mail.retrying} to retry, "
            f"{self.mail.failed} failed; {self.expired_uploads} expired upload(s) removed; "
            f"{self.finished_uploads} interrupted upload(s) handed to their job; "
            f"{self.orphans.objects_removed} orphaned object(s) removed, "
            f"{self.orphans.uploads_aborted} unfinished multipart upload(s) aborted"
        )


def run_once(
    *, engine: Engine, vault: Vault, settings: Settings, mail: bool = True
) -> HousekeepingReport | None:
    """One pass of every housekeeping job (``mail=False`` leaves queued mail for later), or
    None when another process is running its pass."""
    with cluster.exclusive(engine, HOUSEKEEPING_LOCK) as ours:
        if not ours:
            log.info("housekeeping pass skipped: another process is running one")
            return None
        return _pass(engine=engine, vault=vault, settings=settings, mail=mail)


def _pass(*, engine: Engine, vault: Vault, settings: Settings, mail: bool) -> HousekeepingReport:
    from portal.intake import tus, upload_jobs

    sealed = sealer.seal(engine=engine)
    review = sweep(engine=engine, vault=vault, settings=settings)
    delivered = (
        notifications.deliver_pending(
            engine=engine, mail=settings.mail, box=SecretBox(settings.secret_key.get_secret_value())
        )
        if mail
        else DeliveryReport()
    )
    # Before expiring: an upload whose bytes all arrived is handed to its job, not thrown away.
    finished = upload_jobs.resume_stalled(engine=engine)
    with session_scope(engine) as session:
        expired = tus.expire_uploads(session=session, vault=vault)
    with session_scope(engine) as session:
        notifications.purge_delivered(session=session, mail=settings.mail)
    with session_scope(engine) as session:
        throttle.purge_expired(session=session, settings=settings)
        password_reset.purge_expired(session=session, settings=settings)
        second_step.purge_expired(session=session)
    with session_scope(engine) as session:
        audit_service.forget_views(
            session=session, older_than=timedelta(hours=settings.session_absolute_hours)
        )
    leftovers = OrphanReport()
    with session_scope(engine) as session:
        if jobs.take_turn(
            session=session,
            name=ORPHAN_TURN,
            every=timedelta(seconds=settings.orphan_interval_seconds),
            now=utcnow(),
        ):
            leftovers = orphans.remove_orphans(
                session=session,
                vault=vault,
                grace=timedelta(seconds=settings.orphan_grace_seconds),
            )
    return HousekeepingReport(
        review=review,
        mail=delivered,
        expired_uploads=expired,
        finished_uploads=finished,
        orphans=leftovers,
        audit_sealed=sealed.sealed,
    )


async def run_forever(*, engine: Engine, vault: Vault, settings: Settings) -> None:
    """Run ``run_once`` every interval in a worker thread until cancelled; errors are logged."""
    while True:
        await anyio.sleep(settings.sweep_interval_seconds)
        try:
            await anyio.to_thread.run_sync(
                lambda: run_once(engine=engine, vault=vault, settings=settings)
            )
        except Exception:
            log.exception("housekeeping pass failed")
