"""Periodic housekeeping: the review sweep, mail delivery, expired uploads.

``portal sweep`` runs it once (from cron); the server runs it every
``sweep_interval_seconds`` unless ``sweep_enabled`` is off. Every part is safe to run in
several processes at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio
from sqlalchemy.engine import Engine

from portal.db import session_scope
from portal.notifications import service as notifications
from portal.notifications.service import DeliveryReport
from portal.settings import Settings
from reviewers.sweep import SweepReport, sweep
from storage.vault import Vault

log = logging.getLogger(__name__)


@dataclass
class HousekeepingReport:
    review: SweepReport
    mail: DeliveryReport
    expired_uploads: int

    def __str__(self) -> str:
        return (
            f"{self.review}; mail: {self.mail.sent} sent, {self.mail.retrying} to retry, "
            f"{self.mail.failed} failed; {self.expired_uploads} expired upload(s) removed"
        )


def run_once(
    *, engine: Engine, vault: Vault, settings: Settings, mail: bool = True
) -> HousekeepingReport:
    """One pass of every housekeeping job (``mail=False`` leaves queued mail for later)."""
    from portal.intake import tus

    review = sweep(engine=engine, vault=vault, settings=settings)
    delivered = (
        notifications.deliver_pending(engine=engine, mail=settings.mail)
        if mail
        else DeliveryReport()
    )
    with session_scope(engine) as session:
        expired = tus.expire_uploads(session=session, vault=vault)
    with session_scope(engine) as session:
        notifications.purge_delivered(session=session, mail=settings.mail)
    return HousekeepingReport(review=review, mail=delivered, expired_uploads=expired)


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
