"""The completion job of a resumable upload: ingest its chunks as its owner would have.

Asked for by the PATCH that brings the last byte (``tus.assemble``), run by whichever server
process claims it (``portal.jobs``). Running it again after a crash finishes the work without
storing anything twice (``tus.complete``).
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from portal.access import Principal
from portal.accounts.models import Role, User
from portal.audit.service import AuditContext
from portal.intake import tus
from portal.intake.models import TusUpload, UploadStatus
from portal.jobs.service import Handler, JobRun
from portal.objects.texts import bind_vault

log = logging.getLogger(__name__)


def run_completion(run: JobRun) -> None:
    """Ingest the upload named by the job; nothing to do once it is complete or gone."""
    upload_id = uuid.UUID(run.key)
    with bind_vault(Session(run.engine, expire_on_commit=False), run.vault) as session:
        upload = session.get(TusUpload, upload_id)
        owner = session.get(User, upload.owner_id) if upload is not None else None
        if upload is None or owner is None or upload.status != UploadStatus.assembling:
            return
        session.commit()

        def progress(done: int, total: int) -> None:
            session.commit()  # the ingest's own transaction is not held while this writes
            _record_progress(run.engine, upload_id, done, total)
            run.renew()

        tus.complete(
            session=session,
            vault=run.vault,
            settings=run.settings,
            principal=Principal(user_id=owner.id, role=Role(owner.role)),
            ctx=AuditContext(actor_id=owner.id, actor_role="system"),
            upload=upload,
            progress=progress,
            heartbeat=run.renew,
        )
    log.info("finished a resumable upload")


def _record_progress(engine: Engine, upload_id: uuid.UUID, done: int, total: int) -> None:
    with Session(engine) as session:
        session.exec(
            update(TusUpload)
            .where(col(TusUpload.id) == upload_id)
            .values(entries_done=done, entries_total=total)
        )
        session.commit()


def give_up(run: JobRun, reason: str) -> None:
    """Mark the upload failed with ``reason`` and delete its staged bytes."""
    with bind_vault(Session(run.engine, expire_on_commit=False), run.vault) as session:
        tus.fail(session=session, vault=run.vault, upload_id=uuid.UUID(run.key), reason=reason)


COMPLETION = Handler(run=run_completion, give_up=give_up)
HANDLERS = {tus.COMPLETE_JOB: COMPLETION}


def resume_stalled(*, engine: Engine) -> int:
    """Uploads whose every byte arrived but that have no completion job get one.

    Only uploads received before completion became a job can be in this state (the last
    chunk and the job are recorded together now); returns how many were found.
    """
    with Session(engine) as session:
        stalled = session.exec(
            select(TusUpload)
            .where(TusUpload.status == UploadStatus.receiving.value)
            .where(col(TusUpload.length) > 0)
            .where(col(TusUpload.offset) == col(TusUpload.length))
            .with_for_update()
        ).all()
        for upload in stalled:
            tus.assemble(session=session, upload=upload)
            session.add(upload)
        session.commit()
    return len(stalled)
