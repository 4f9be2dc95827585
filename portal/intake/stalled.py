"""Resumable uploads whose every byte arrived but whose ingest never finished.

The last PATCH of a tus upload records its chunk (the offset reaches the length) and then
runs the ingest in the same request. A server killed between the two leaves an upload that
no client will finish: asked for the offset, the server answers "all of it", so the client
stops sending. Housekeeping finishes such uploads; without it their bytes would wait until
the upload expired and then be deleted unread.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from portal.access import Principal
from portal.accounts.models import Role, User
from portal.audit.service import AuditContext
from portal.db import utcnow
from portal.errors import PortalError
from portal.intake import tus
from portal.intake.models import TusUpload
from portal.objects.texts import bind_vault
from portal.settings import Settings
from storage.vault import Vault

log = logging.getLogger(__name__)


def finish_stalled_uploads(
    *, engine: Engine, vault: Vault, settings: Settings, now: datetime | None = None
) -> int:
    """Ingest complete uploads idle for longer than the grace period; returns how many.

    An upload whose last chunk came in less than ``orphan_grace_seconds`` ago may still be
    ingesting in another process and is left alone. Each upload is claimed first (its expiry
    moves on, compared and set in one statement), so two housekeepers never ingest the same
    upload, and a claimed upload is not picked again for another grace period.
    """
    now = now or utcnow()
    expiry = timedelta(hours=settings.tus_expiry_hours)
    # A chunk sets expires_at to its arrival + expiry: this is "last chunk before the grace".
    idle_limit = now - timedelta(seconds=settings.orphan_grace_seconds) + expiry
    with Session(engine) as session:
        stalled = session.exec(
            select(TusUpload.id, TusUpload.expires_at)
            .where(col(TusUpload.completed_at).is_(None))
            .where(col(TusUpload.length) > 0)
            .where(col(TusUpload.offset) == col(TusUpload.length))
            .where(col(TusUpload.expires_at) <= idle_limit)
        ).all()
    finished = 0
    for upload_id, expires_at in stalled:
        if _claim(engine, upload_id, expires_at, now + expiry) and _finish(
            engine, vault, settings, upload_id
        ):
            finished += 1
    return finished


def _claim(engine: Engine, upload_id: uuid.UUID, seen: datetime, until: datetime) -> bool:
    with Session(engine) as session:
        result: Any = session.exec(
            update(TusUpload)
            .where(col(TusUpload.id) == upload_id)
            .where(col(TusUpload.expires_at) == seen)
            .where(col(TusUpload.completed_at).is_(None))
            .values(expires_at=until)
        )
        session.commit()
    return int(result.rowcount) == 1


def _finish(engine: Engine, vault: Vault, settings: Settings, upload_id: uuid.UUID) -> bool:
    """Run the upload's ingest as its owner would have; False when it cannot be finished."""
    # The ingest seals the file's name with the case key: the session carries the vault.
    with bind_vault(Session(engine, expire_on_commit=False), vault) as session:
        upload = session.get(TusUpload, upload_id)
        owner = session.get(User, upload.owner_id) if upload is not None else None
        if upload is None or owner is None:
            return False
        try:
            tus.complete(
                session=session,
                vault=vault,
                settings=settings,
                principal=Principal(user_id=owner.id, role=Role(owner.role)),
                ctx=AuditContext(actor_id=owner.id, actor_role="system"),
                upload=upload,
            )
        except PortalError as exc:
            # The case stopped accepting files meanwhile: the upload expires as usual.
            session.rollback()
            log.warning("a stalled upload could not be finished: %s", type(exc).__name__)
            return False
    log.info("finished a resumable upload interrupted before its ingest")
    return True
