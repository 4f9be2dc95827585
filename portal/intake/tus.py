"""Resumable uploads, tus 1.0.0: creation, creation-with-upload, checksum, expiration, termination.

Each PATCH body becomes one encrypted object (a chunk); the upload's offset moves only when a
chunk is stored and recorded. The PATCH that brings the last byte records the upload as
``assembling`` and asks for its completion job in the same transaction, and answers at once:
the job (``portal.intake.upload_jobs``, any replica) reads the chunks back in order through the
same ingest as every other upload, then deletes them (docs/jobs.md). A creation request that
carries the whole file goes through the ingest directly (``ingest_whole``). State lives in the
database and object storage, so an upload resumes after a dropped connection or a server
restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from portal import access
from portal.access import Principal
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.cases.models import Case
from portal.db import utcnow
from portal.errors import ChecksumMismatch, Conflict, Gone, InvalidInput, NotFound, PayloadTooLarge
from portal.i18n import _
from portal.intake import service as intake_service
from portal.intake import tus_chunks
from portal.intake.models import QueuedArchive, TusChunk, TusUpload, UploadResult, UploadStatus
from portal.intake.pipeline import Ingest
from portal.jobs import service as jobs_service
from portal.objects import service as objects_service
from portal.objects import texts
from portal.settings import Settings
from storage.vault import StoredObject, Vault

TUS_VERSION = "1.0.0"
COMPLETE_JOB = "upload.complete"
EXTENSIONS = "creation,creation-with-upload,checksum,expiration,termination"
CHECKSUMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64(value)`` pairs."""
    metadata: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in (header or "").split(","))):
        key, _space, encoded = pair.partition(" ")
        try:
            metadata[key] = (
                base64.b64decode(encoded, validate=True).decode("utf-8") if encoded else ""
            )
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidInput(
                _("Upload-Metadata value for '%(key)s' is not valid base64 UTF-8.", key=key)
            ) from exc
    return metadata


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes

    @classmethod
    def parse(cls, header: str | None) -> Checksum | None:
        if not header:
            return None
        algorithm, _space, encoded = header.strip().partition(" ")
        if algorithm not in CHECKSUMS:
            raise InvalidInput(
                _(
                    "Checksum algorithm '%(algorithm)s' is not supported (use sha1 or sha256).",
                    algorithm=algorithm,
                )
            )
        try:
            return cls(algorithm, base64.b64decode(encoded, validate=True))
        except binascii.Error as exc:
            raise InvalidInput(_("Upload-Checksum is not valid base64.")) from exc


def expiry(settings: Settings, *, created_at: datetime) -> datetime:
    """When an unfinished upload expires: a while after its last PATCH, never past its
    lifetime however often it is PATCHed."""
    return min(
        utcnow() + timedelta(hours=settings.tus_expiry_hours),
        created_at + timedelta(hours=settings.tus_max_lifetime_hours),
    )


def upload_to_append(*, session: Session, principal: Principal, upload_id: uuid.UUID) -> TusUpload:
    """The caller's unfinished upload, if its case still accepts files (else 409)."""
    upload = owned_upload(session=session, principal=principal, upload_id=upload_id)
    if upload.status != UploadStatus.receiving:
        raise Conflict(_("This upload is already complete."))
    intake_service.case_for_upload(session=session, principal=principal, case_id=upload.case_id)
    return upload


def upload_to_terminate(
    *, session: Session, principal: Principal, upload_id: uuid.UUID
) -> TusUpload:
    """The caller's upload, unless its completion job is ingesting it (then 409)."""
    upload = owned_upload(session=session, principal=principal, upload_id=upload_id)
    if upload.status == UploadStatus.assembling:
        raise Conflict(_("This upload is being processed and can no longer be cancelled."))
    return upload


def owned_upload(*, session: Session, principal: Principal, upload_id: uuid.UUID) -> TusUpload:
    """The caller's own upload; anyone else's is reported as not existing."""
    upload = session.get(TusUpload, upload_id)
    case = session.get(Case, upload.case_id) if upload is not None else None
    if upload is None or case is None or not access.may(principal, case, "case.files.add"):
        raise NotFound(_("Upload not found."))
    if upload.status == UploadStatus.receiving and upload.expires_at <= utcnow():
        raise Gone(_("This upload expired; start it again."))
    return upload


@dataclass
class _ChunkHasher:
    """Counts and hashes a PATCH body on its way into storage, refusing bytes past the end."""

    chunks: Iterable[bytes]
    remaining: int
    checksum: Checksum | None
    received: int = 0

    def __post_init__(self) -> None:
        self._hash = CHECKSUMS[self.checksum.algorithm]() if self.checksum else None

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.received += len(chunk)
            if self.received > self.remaining:
                raise PayloadTooLarge(_("The data goes past the declared Upload-Length."))
            if self._hash is not None:
                self._hash.update(chunk)
            yield chunk

    def matches(self) -> bool:
        return self._hash is None or (
            self.checksum is not None and self._hash.digest() == self.checksum.digest
        )


def append(
    *,
    session: Session,
    vault: Vault,
    settings: Settings,
    principal: Principal,
    ctx: AuditContext,
    upload: TusUpload,
    offset: int,
    body: Iterable[bytes],
    checksum: Checksum | None,
    disconnected: Callable[[], bool],
) -> TusUpload:
    """Store a PATCH body as the next chunk; with the last one, ask for the completion job."""
    if offset != upload.offset:
        raise Conflict(
            _(
                "Upload-Offset %(sent)s does not match the server's offset %(expected)s.",
                sent=offset,
                expected=upload.offset,
            )
        )
    if upload.status != UploadStatus.receiving:
        raise Conflict(_("This upload is already complete."))
    wrapped = objects_service.case_key(session=session, vault=vault, case_id=upload.case_id)
    upload_id, case_id, remaining = upload.id, upload.case_id, upload.length - upload.offset
    session.commit()  # no transaction stays open while the body streams in
    hasher = _ChunkHasher(body, remaining, checksum)
    stored = vault.put(case_id=str(case_id), wrapped_key=wrapped, source=hasher)
    keep = stored.size > 0 and hasher.matches() and not (checksum and disconnected())
    with objects_service.staged(vault) as staging:
        staging.object_keys.append(stored.object_key)
        if not keep:
            staging.discard()
            if not hasher.matches() and not disconnected():
                raise ChecksumMismatch()
            return upload
        # The case may have been cancelled or submitted while the body streamed in.
        intake_service.case_for_upload(session=session, principal=principal, case_id=case_id)
        locked = _lock(session, upload_id)
        if locked.offset != offset:
            raise Conflict(_("Another request appended to this upload at the same time."))
        row = objects_service.record(session=session, case_id=case_id, stored=stored)
        session.add(
            TusChunk(
                upload_id=upload_id, stored_object_id=row.id, offset=offset, length=stored.size
            )
        )
        locked.offset = offset + stored.size
        locked.expires_at = expiry(settings, created_at=locked.created_at)
        if locked.offset == locked.length:
            assemble(session=session, upload=locked)
        session.add(locked)
        session.commit()
    return locked


def assemble(*, session: Session, upload: TusUpload) -> None:
    """Every byte arrived: the upload waits for its completion job (the caller commits)."""
    upload.status = UploadStatus.assembling.value
    jobs_service.enqueue(session=session, kind=COMPLETE_JOB, key=str(upload.id))


def stage_archive(
    *,
    session: Session,
    settings: Settings,
    case_id: uuid.UUID,
    owner_id: uuid.UUID,
    filename: str,
    stored: StoredObject,
) -> QueuedArchive:
    """Keep a ZIP that came whole in a multipart request as the one chunk of an upload, for
    its completion job to import as it imports a resumable one; commits.

    Until its request has finished (``queue_staged``) the upload is not complete (offset 0):
    nothing imports it, and a request that breaks off drops it (``drop_staged``). One whose
    process died in between expires like any unfinished upload, its bytes with it.
    """
    upload = TusUpload(
        case_id=case_id,
        owner_id=owner_id,
        length=stored.size,
        expires_at=expiry(settings, created_at=utcnow()),
    )
    texts.for_case(session=session, case_id=case_id).seal(upload, "filename", filename)
    session.add(upload)
    session.flush()
    row = objects_service.record(session=session, case_id=case_id, stored=stored)
    session.add(
        TusChunk(upload_id=upload.id, stored_object_id=row.id, offset=0, length=stored.size)
    )
    session.commit()
    return QueuedArchive(
        archive=filename, upload_id=upload.id, progress=f"/api/uploads/{upload.id}"
    )


def queue_staged(*, session: Session, upload_ids: Iterable[uuid.UUID]) -> None:
    """The request that staged these archives answered: each waits for its completion job."""
    for upload_id in upload_ids:
        upload = _lock(session, upload_id)
        upload.offset = upload.length
        assemble(session=session, upload=upload)
        session.add(upload)
    session.commit()


def drop_staged(*, session: Session, vault: Vault, upload_ids: Iterable[uuid.UUID]) -> None:
    """The request that staged these archives broke off: forget them and their bytes."""
    session.rollback()
    for upload_id in upload_ids:
        upload = session.get(TusUpload, upload_id)
        if upload is not None and upload.status == UploadStatus.receiving:
            chunks = tus_chunks.of_upload(session=session, upload_id=upload_id)
            tus_chunks.drop(session=session, vault=vault, chunks=chunks)
            session.delete(session.get(TusUpload, upload_id))
            session.commit()


def _lock(session: Session, upload_id: uuid.UUID) -> TusUpload:
    """The upload's row, locked for this transaction; 404 once terminated, 409 while another
    request holds it longer than the database waits."""
    try:
        locked = session.exec(
            select(TusUpload).where(TusUpload.id == upload_id).with_for_update()
        ).first()
    except OperationalError as exc:  # SQLite: still locked after its busy timeout
        session.rollback()
        raise Conflict(_("Another request is writing to this upload; try again.")) from exc
    if locked is None:
        raise NotFound(_("Upload not found."))
    return locked


def ingest_whole(
    *,
    session: Session,
    vault: Vault,
    settings: Settings,
    principal: Principal,
    ctx: AuditContext,
    upload: TusUpload,
    body: Iterable[bytes],
    checksum: Checksum | None,
) -> TusUpload:
    """Creation-with-upload whose body is the whole file: straight into the common ingest.

    Nobody can resume this upload yet (its address is in this request's answer), so keeping
    a chunk for a resume would only cost a second encryption, write, read and delete. A body
    that stops short or fails its checksum stores nothing and leaves the offset at 0.
    """
    ingest = ingest_into_case(session, vault, settings, principal, ctx, upload)
    ingest.stage_archive = lambda name, stored: _stage_own(session, upload, name, stored)
    hasher = _ChunkHasher(body, upload.length, checksum)
    name = filename(session=session, upload=upload)
    try:
        ingest.add(filename=name, chunks=_whole(hasher, upload.length), source="tus")
    except _CutShort:
        session.rollback()
        return upload
    finished = session.get(TusUpload, upload.id) or upload
    finished.offset = finished.length
    if ingest.result.queued:
        assemble(session=session, upload=finished)  # a ZIP: its entries are the job's work
    else:
        record_result(session, finished, ingest.result)
    session.add(finished)
    session.commit()
    return finished


def _stage_own(
    session: Session, upload: TusUpload, name: str, stored: StoredObject
) -> QueuedArchive:
    """A ZIP sent whole at creation: it becomes the upload's one chunk, for its completion
    job to import, as if it had come in several PATCHes (committed with the upload's state)."""
    row = objects_service.record(session=session, case_id=upload.case_id, stored=stored)
    session.add(
        TusChunk(upload_id=upload.id, stored_object_id=row.id, offset=0, length=stored.size)
    )
    return QueuedArchive(archive=name, upload_id=upload.id, progress=f"/api/uploads/{upload.id}")


def filename(*, session: Session, upload: TusUpload) -> str:
    """The upload's file name, in clear."""
    return texts.for_case(session=session, case_id=upload.case_id).open(upload, "filename") or ""


def record_result(session: Session, upload: TusUpload, result: UploadResult) -> None:
    upload.status = UploadStatus.complete.value
    upload.completed_at = utcnow()
    texts.for_case(session=session, case_id=upload.case_id).seal(
        upload, "result", result.model_dump_json()
    )
    session.add(upload)


def ingest_into_case(
    session: Session,
    vault: Vault,
    settings: Settings,
    principal: Principal,
    ctx: AuditContext,
    upload: TusUpload,
) -> Ingest:
    """The common ingest for the upload's case, once the case still accepts files."""
    case = intake_service.case_for_upload(
        session=session, principal=principal, case_id=upload.case_id
    )
    return Ingest(
        session=session,
        vault=vault,
        settings=settings,
        ctx=ctx,
        case=case,
        uploader_id=principal.user_id,
        tus_upload_id=upload.id,
    )


class _CutShort(Exception):
    """The body ended before the length it declared: the client went away."""


def _whole(hasher: _ChunkHasher, length: int) -> Iterator[bytes]:
    """The body, then a check that all of it came and matched its checksum.

    Raised as the last chunk is consumed, so the object being stored is abandoned before any
    row vouches for it.
    """
    yield from hasher
    if hasher.received < length:
        raise _CutShort()
    if not hasher.matches():
        raise ChecksumMismatch()


def terminate(*, session: Session, vault: Vault, ctx: AuditContext, upload: TusUpload) -> None:
    """Termination extension: forget the upload and its staged bytes."""
    tus_chunks.drop(
        session=session,
        vault=vault,
        chunks=tus_chunks.of_upload(session=session, upload_id=upload.id),
    )
    audit_service.record(
        session=session,
        ctx=ctx,
        action="upload.terminate",
        entity_type="upload",
        entity_id=upload.id,
        case_id=upload.case_id,
    )
    session.delete(session.get(TusUpload, upload.id))
    session.commit()


def abandon(*, session: Session, vault: Vault, ctx: AuditContext, upload: TusUpload) -> None:
    """Terminate an upload whose creation failed after the row was made."""
    session.rollback()
    terminate(session=session, vault=vault, ctx=ctx, upload=upload)


def expire_uploads(*, session: Session, vault: Vault) -> int:
    """Delete incomplete uploads past their expiry, with their staged chunks."""
    expired = session.exec(
        select(TusUpload)
        .where(TusUpload.status == UploadStatus.receiving.value)
        .where(col(TusUpload.expires_at) <= utcnow())
    ).all()
    for upload in expired:
        terminate(
            session=session, vault=vault, ctx=AuditContext(actor_role="system"), upload=upload
        )
    return len(expired)


def result_of(*, session: Session, upload: TusUpload) -> UploadResult | None:
    """What the ingest made of the upload, once complete."""
    if upload.result_sealed is None:
        return None
    sealed = texts.for_case(session=session, case_id=upload.case_id).open(upload, "result")
    return UploadResult.model_validate(json.loads(sealed or "{}"))
