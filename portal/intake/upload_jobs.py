"""The completion job of a resumable upload: ingest its chunks as its owner would have.

Asked for by the PATCH that brings the last byte (``tus.assemble``), run by whichever server
process claims it (``portal.jobs``). Running it again after a crash finishes the work without
storing anything twice (``complete``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from portal import i18n
from portal.access import Principal
from portal.accounts.models import Role, User
from portal.audit.service import AuditContext
from portal.db import utcnow
from portal.intake import tus, tus_chunks
from portal.intake.models import TusUpload, UploadResult, UploadStatus
from portal.jobs.service import Handler, JobRun
from portal.objects.texts import bind_vault
from portal.settings import Settings
from storage.vault import Vault

log = logging.getLogger(__name__)
PROGRESS_SECONDS = 0.25
"""A ZIP's progress is written at most this often (and at its start and end)."""


class _Paced:
    """Due at most once per ``interval`` seconds (a 20,000-entry CD would otherwise record its
    progress 20,000 times)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.interval:
            return False
        self._last = now
        return True


def run_completion(run: JobRun) -> None:
    """Ingest the upload named by the job; nothing to do once it is complete or gone."""
    upload_id = uuid.UUID(run.key)
    with bind_vault(Session(run.engine, expire_on_commit=False), run.vault) as session:
        upload = session.get(TusUpload, upload_id)
        owner = session.get(User, upload.owner_id) if upload is not None else None
        if upload is None or owner is None or upload.status != UploadStatus.assembling:
            return
        session.commit()
        shown = _Paced(PROGRESS_SECONDS)

        def progress(done: int, total: int) -> None:
            run.check()
            if shown.due() or done in (0, total):
                session.commit()  # the ingest's own transaction is not held while this writes
                _record_progress(run.engine, upload_id, done, total)

        with i18n.speaking(owner.language):  # the reasons of refused files are the owner's to read
            complete(
                session=session,
                vault=run.vault,
                settings=run.settings,
                principal=Principal(user_id=owner.id, role=Role(owner.role)),
                ctx=AuditContext(actor_id=owner.id, actor_role="system"),
                upload=upload,
                progress=progress,
                heartbeat=run.check,
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
        fail(session=session, vault=run.vault, upload_id=uuid.UUID(run.key), reason=reason)


def complete(
    *,
    session: Session,
    vault: Vault,
    settings: Settings,
    principal: Principal,
    ctx: AuditContext,
    upload: TusUpload,
    progress: Callable[[int, int], None],
    heartbeat: Callable[[], None],
) -> UploadResult:
    """Run the assembled bytes through the common ingest, then drop the chunks.

    Safe to run again after a crash at any point: parts an earlier run stored are found by
    (upload, entry) and not stored twice, and the upload is marked complete in the same
    transaction that forgets its chunks, whose objects are deleted only after it.
    """
    ingest = tus.ingest_into_case(session, vault, settings, principal, ctx, upload)
    ingest.progress = progress
    name = tus.filename(session=session, upload=upload)
    chunks = tus_chunks.of_upload(session=session, upload_id=upload.id)
    staged = tus_chunks.read_back(session=session, vault=vault, chunks=chunks, heartbeat=heartbeat)
    ingest.add(filename=name, chunks=staged, source="tus")
    upload = session.get(TusUpload, upload.id) or upload
    tus.record_result(session, upload, ingest.result)
    tus_chunks.forget(session=session, vault=vault, chunks=chunks)
    return ingest.result


def fail(*, session: Session, vault: Vault, upload_id: uuid.UUID, reason: str) -> None:
    """The completion job gave up: the upload is failed, its staged bytes deleted."""
    upload = session.get(TusUpload, upload_id)
    if upload is None or upload.status != UploadStatus.assembling:
        return
    chunks = tus_chunks.of_upload(session=session, upload_id=upload_id)
    upload = session.get(TusUpload, upload_id)
    assert upload is not None
    upload.status = UploadStatus.failed.value
    upload.failure = reason[:255]
    upload.completed_at = utcnow()
    session.add(upload)
    tus_chunks.forget(session=session, vault=vault, chunks=chunks)


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
