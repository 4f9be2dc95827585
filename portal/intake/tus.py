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

from sqlalchemy import func
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from portal import access
from portal.access import Principal
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.cases.models import Case
from portal.db import utcnow
from portal.errors import ChecksumMismatch, Conflict, Gone, InvalidInput, NotFound, PayloadTooLarge
from portal.intake import service as intake_service
from portal.intake.models import CaseFile, TusChunk, TusUpload, UploadResult, UploadStatus
from portal.intake.pipeline import Ingest, display_name, unfinished_uploads
from portal.jobs import service as jobs_service
from portal.objects import service as objects_service
from portal.objects import texts
from portal.objects.models import StoredObject
from portal.settings import Settings
from storage.vault import Vault

TUS_VERSION = "1.0.0"
COMPLETE_JOB = "upload.complete"
EXTENSIONS = "creation,creation-with-upload,checksum,expiration,termination"
CHECKSUMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256}


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64(value)`` pairs."""
    metadata: dict[str, str] = {}
    for pair in filter(None, (part.strip() for part in (header or "").split(","))):
        key, _, encoded = pair.partition(" ")
        try:
            metadata[key] = (
                base64.b64decode(encoded, validate=True).decode("utf-8") if encoded else ""
            )
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidInput(
                f"Upload-Metadata value for '{key}' is not valid base64 UTF-8."
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
        algorithm, _, encoded = header.strip().partition(" ")
        if algorithm not in CHECKSUMS:
            raise InvalidInput(
                f"Checksum algorithm '{algorithm}' is not supported (use sha1 or sha256)."
            )
        try:
            return cls(algorithm, base64.b64decode(encoded, validate=True))
        except binascii.Error as exc:
            raise InvalidInput("Upload-Checksum is not valid base64.") from exc


def create_upload(
    *,
    session: Session,
    settings: Settings,
    principal: Principal,
    ctx: AuditContext,
    length: int,
    metadata: dict[str, str],
) -> TusUpload:
    """Open a resumable upload into the caller's own case (which must accept files)."""
    if length < 0:
        raise InvalidInput("Upload-Length must be zero or more.")
    if length > settings.tus_max_bytes:
        raise PayloadTooLarge(
            f"The upload is larger than the {settings.tus_max_bytes // 1024**3} GB allowed."
        )
    try:
        case_id = uuid.UUID(metadata.get("case_id", ""))
    except ValueError as exc:
        raise InvalidInput(
            "Upload-Metadata must carry the case_id of the case to upload into."
        ) from exc
    case = intake_service.case_for_upload(session=session, principal=principal, case_id=case_id)
    # One creation per case at a time (SQLite's BEGIN IMMEDIATE already serializes writers).
    session.exec(select(Case.id).where(Case.id == case.id).with_for_update()).one()
    _check_room(session=session, settings=settings, principal=principal, case=case, length=length)
    now = utcnow()
    upload = TusUpload(
        case_id=case.id,
        owner_id=principal.user_id,
        length=length,
        created_at=now,
        expires_at=_expiry(settings, created_at=now),
    )
    texts.for_case(session=session, case_id=case.id).seal(
        upload, "filename", display_name(metadata.get("filename"))
    )
    session.add(upload)
    audit_service.record(
        session=session,
        ctx=ctx,
        action="upload.create",
        entity_type="upload",
        entity_id=upload.id,
        case_id=case.id,
        details={"length": length},
    )
    session.commit()
    return upload


def _check_room(
    *, session: Session, settings: Settings, principal: Principal, case: Case, length: int
) -> None:
    """Refuse an upload over the open-upload caps or over the case's quota.

    The quota counts the case's files and the declared length of each unfinished upload
    (whatever of it has been staged so far), so uploads cannot together promise more.
    """
    per_case, reserved = session.exec(
        select(func.count(), func.coalesce(func.sum(TusUpload.length), 0))
        .where(*unfinished_uploads())
        .where(TusUpload.case_id == case.id)
    ).one()
    if per_case >= settings.tus_max_open_per_case:
        raise Conflict(
            f"This case already has {per_case} unfinished uploads. "
            "Let them finish or cancel some before starting another."
        )
    per_account = session.exec(
        select(func.count())
        .select_from(TusUpload)
        .where(*unfinished_uploads())
        .where(TusUpload.owner_id == principal.user_id)
    ).one()
    if per_account >= settings.tus_max_open_per_account:
        raise Conflict(
            f"You already have {per_account} unfinished uploads. "
            "Let them finish or cancel some before starting another."
        )
    used = session.exec(
        select(func.coalesce(func.sum(CaseFile.size), 0)).where(CaseFile.case_id == case.id)
    ).one()
    if int(used) + int(reserved) + length > settings.case_quota_bytes:
        left = max(0, settings.case_quota_bytes - int(used) - int(reserved))
        raise PayloadTooLarge(
            f"This upload ({_gib(length)}) does not fit in the case's storage: "
            f"{_gib(left)} of {_gib(settings.case_quota_bytes)} are left, counting "
            "unfinished uploads."
        )


def _gib(size: int) -> str:
    return f"{size / 1024**3:.1f} GB" if size >= 1024**3 else f"{size / 1024**2:.1f} MB"


def _expiry(settings: Settings, *, created_at: datetime) -> datetime:
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
        raise Conflict("This upload is already complete.")
    intake_service.case_for_upload(session=session, principal=principal, case_id=upload.case_id)
    return upload


def owned_upload(*, session: Session, principal: Principal, upload_id: uuid.UUID) -> TusUpload:
    """The caller's own upload; anyone else's is reported as not existing."""
    upload = session.get(TusUpload, upload_id)
    case = session.get(Case, upload.case_id) if upload is not None else None
    if upload is None or case is None or not access.may(principal, case, "case.files.add"):
        raise NotFound("Upload not found.")
    if upload.status == UploadStatus.receiving and upload.expires_at <= utcnow():
        raise Gone("This upload expired; start it again.")
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
                raise PayloadTooLarge("The data goes past the declared Upload-Length.")
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
            f"Upload-Offset {offset} does not match the server's offset {upload.offset}."
        )
    if upload.status != UploadStatus.receiving:
        raise Conflict("This upload is already complete.")
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
            raise Conflict("Another request appended to this upload at the same time.")
        row = objects_service.record(session=session, case_id=case_id, stored=stored)
        session.add(
            TusChunk(
                upload_id=upload_id, stored_object_id=row.id, offset=offset, length=stored.size
            )
        )
        locked.offset = offset + stored.size
        locked.expires_at = _expiry(settings, created_at=locked.created_at)
        if locked.offset == locked.length:
            assemble(session=session, upload=locked)
        session.add(locked)
        session.commit()
    return locked


def assemble(*, session: Session, upload: TusUpload) -> None:
    """Every byte arrived: the upload waits for its completion job (the caller commits)."""
    upload.status = UploadStatus.assembling.value
    jobs_service.enqueue(session=session, kind=COMPLETE_JOB, key=str(upload.id))


def _lock(session: Session, upload_id: uuid.UUID) -> TusUpload:
    """The upload's row, locked for this transaction; 404 once terminated, 409 while another
    request holds it longer than the database waits."""
    try:
        locked = session.exec(
            select(TusUpload).where(TusUpload.id == upload_id).with_for_update()
        ).first()
    except OperationalError as exc:  # SQLite: still locked after its busy timeout
        session.rollback()
        raise Conflict("Another request is writing to this upload; try again.") from exc
    if locked is None:
        raise NotFound("Upload not found.")
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
    ingest = _ingest_into_case(session, vault, settings, principal, ctx, upload)
    hasher = _ChunkHasher(body, upload.length, checksum)
    name = filename(session=session, upload=upload)
    try:
        ingest.add(filename=name, chunks=_whole(hasher, upload.length), source="tus")
    except _CutShort:
        session.rollback()
        return upload
    finished = session.get(TusUpload, upload.id) or upload
    finished.offset = finished.length
    _record_result(session, finished, ingest.result)
    session.commit()
    return finished


def filename(*, session: Session, upload: TusUpload) -> str:
    """The upload's file name, in clear."""
    return texts.for_case(session=session, case_id=upload.case_id).open(upload, "filename") or ""


def _record_result(session: Session, upload: TusUpload, result: UploadResult) -> None:
    upload.status = UploadStatus.complete.value
    upload.completed_at = utcnow()
    texts.for_case(session=session, case_id=upload.case_id).seal(
        upload, "result", result.model_dump_json()
    )
    session.add(upload)


def _ingest_into_case(
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
    ingest = _ingest_into_case(session, vault, settings, principal, ctx, upload)
    ingest.progress = progress
    name = filename(session=session, upload=upload)
    chunks = _chunks(session, upload.id)
    ingest.add(filename=name, chunks=_read_back(session, vault, chunks, heartbeat), source="tus")
    upload = session.get(TusUpload, upload.id) or upload
    _record_result(session, upload, ingest.result)
    _forget_chunks(session, vault, chunks)
    return ingest.result


def _chunks(session: Session, upload_id: uuid.UUID) -> list[tuple[TusChunk, StoredObject]]:
    rows = session.exec(
        select(TusChunk, StoredObject)
        .join(StoredObject, col(StoredObject.id) == col(TusChunk.stored_object_id))
        .where(TusChunk.upload_id == upload_id)
        .order_by(col(TusChunk.offset))
    ).all()
    session.commit()
    return [(chunk, stored) for chunk, stored in rows]


def _read_back(
    session: Session,
    vault: Vault,
    chunks: list[tuple[TusChunk, StoredObject]],
    heartbeat: Callable[[], None],
) -> Iterator[bytes]:
    for _chunk, stored in chunks:
        heartbeat()
        opened = objects_service.open_object(session=session, vault=vault, row=stored)
        session.commit()  # no transaction (SQLite: the write lock) stays open while it streams
        yield from opened


def _forget_chunks(
    session: Session, vault: Vault, chunks: list[tuple[TusChunk, StoredObject]]
) -> None:
    """Delete the chunks' rows with the caller's transaction, then their objects (one left
    behind by a crash has no row, and the orphan sweep removes it)."""
    for chunk, stored in chunks:
        session.delete(session.get(TusChunk, chunk.id))
        session.delete(session.get(StoredObject, stored.id))
    session.commit()
    for _chunk, stored in chunks:
        vault.delete(stored.object_key)


def fail(*, session: Session, vault: Vault, upload_id: uuid.UUID, reason: str) -> None:
    """The completion job gave up: the upload is failed, its staged bytes deleted."""
    upload = session.get(TusUpload, upload_id)
    if upload is None or upload.status != UploadStatus.assembling:
        return
    chunks = _chunks(session, upload_id)
    upload = session.get(TusUpload, upload_id)
    assert upload is not None
    upload.status = UploadStatus.failed.value
    upload.failure = reason[:255]
    upload.completed_at = utcnow()
    session.add(upload)
    _forget_chunks(session, vault, chunks)


def _drop_chunks(
    session: Session, vault: Vault, chunks: list[tuple[TusChunk, StoredObject]]
) -> None:
    for chunk, stored in chunks:
        vault.delete(stored.object_key)
        session.delete(session.get(TusChunk, chunk.id))
        session.delete(session.get(StoredObject, stored.id))
    session.commit()


def terminate(*, session: Session, vault: Vault, ctx: AuditContext, upload: TusUpload) -> None:
    """Termination extension: forget the upload and its staged bytes."""
    _drop_chunks(session, vault, _chunks(session, upload.id))
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
