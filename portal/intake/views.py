"""JSON API: upload files into a case, list them, download them, read the study index."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from portal.deps import Caller, PageDep, SessionDep, SettingsDep, vault_of
from portal.errors import InvalidInput
from portal.i18n import _
from portal.intake import service, tus
from portal.intake.capacity import UploadCapacity
from portal.intake.models import CaseFilePublic, UploadResult
from portal.intake.multipart import MultipartStream
from portal.intake.pipeline import Ingest
from portal.intake.schemas import StudiesPublic
from portal.pagination import Page

router = APIRouter(prefix="/api/cases", tags=["intake"])

MEDIA_TYPES = {
    "dicom": "application/dicom",
    "pdf": "application/pdf",
    "jpeg": "image/jpeg",
    "png": "image/png",
}


@router.post("/{case_id}/files")
async def upload_files(
    case_id: uuid.UUID, request: Request, caller: Caller, session: SessionDep, settings: SettingsDep
) -> UploadResult:
    """Multipart upload, field ``files``, one or many; each accepted or rejected with a reason.

    All or nothing for a request that does not finish (stalled, cut short, disconnected):
    files it completed before are withdrawn, since its sender never learns of them.
    """
    capacity = upload_capacity(request)
    with capacity.admit(caller.user.id):
        case = await anyio.to_thread.run_sync(
            lambda: service.case_for_upload(
                session=session, principal=caller.principal, case_id=case_id
            )
        )
        stream = MultipartStream(
            request.headers.get("content-type", ""),
            request.stream().__aiter__(),
            stall_seconds=settings.upload_stall_seconds,
        )
        await stream.prefetch()  # a client that sends a few bytes and stops holds no thread
        ingest = Ingest(
            session=session,
            vault=vault_of(request),
            settings=settings,
            ctx=caller.ctx,
            case=case,
            uploader_id=caller.user.id,
            stage_archive=lambda name, stored: tus.stage_archive(
                session=session,
                settings=settings,
                case_id=case.id,
                owner_id=caller.user.id,
                filename=name,
                stored=stored,
            ),
        )
        files = await capacity.run(lambda: _ingest_parts(stream, ingest))
    if files == 0:
        raise InvalidInput(_("Choose at least one file to upload (form field 'files')."))
    if ingest.result.queued:
        request.app.state.jobs.wake()  # this process starts the imports at once
    return ingest.result


def _ingest_parts(stream: MultipartStream, ingest: Ingest) -> int:
    """Ingest every ``files`` part (in an upload thread); how many there were. ZIPs are
    staged, then handed to their import jobs once every part has arrived."""
    files = 0
    try:
        for headers, chunks in stream.parts():
            if headers.field != "files" or headers.filename is None:
                for _chunk in chunks:
                    pass
                continue
            files += 1
            ingest.add(filename=headers.filename, chunks=chunks, source="upload")
        staged = [item.upload_id for item in ingest.result.queued]
        tus.queue_staged(session=ingest.session, upload_ids=staged)
    except BaseException:
        staged = [item.upload_id for item in ingest.result.queued]
        ingest.withdraw()
        tus.drop_staged(session=ingest.session, vault=ingest.vault, upload_ids=staged)
        raise
    return files


def upload_capacity(request: Request) -> UploadCapacity:
    """The app's upload threads and per-account cap (built in its lifespan)."""
    capacity: UploadCapacity = request.app.state.upload_capacity
    return capacity


@router.get("/{case_id}/files")
def list_files(
    case_id: uuid.UUID, caller: Caller, session: SessionDep, page: PageDep
) -> Page[CaseFilePublic]:
    """The case's files in the order they arrived, one page at a time."""
    files, next_cursor = service.list_files(
        session=session, principal=caller.principal, ctx=caller.ctx, case_id=case_id, page=page
    )
    return Page(items=service.describe_files(session=session, files=files), next=next_cursor)


@router.get("/{case_id}/files/{file_id}/content")
def file_content(
    case_id: uuid.UUID, file_id: uuid.UUID, request: Request, caller: Caller, session: SessionDep
) -> StreamingResponse:
    """The original bytes, exactly as uploaded (same SHA-256)."""
    case_file, chunks = service.open_file(
        session=session,
        vault=vault_of(request),
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        file_id=file_id,
    )
    name = service.file_name(session=session, case_file=case_file)
    disposition = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
    return StreamingResponse(
        chunks,
        media_type=MEDIA_TYPES.get(case_file.kind, "application/octet-stream"),
        headers={
            "Content-Disposition": disposition,
            "Content-Length": str(case_file.size),
            "X-Content-SHA256": case_file.sha256,
            "Cache-Control": "no-store",
        },
    )


@router.get("/{case_id}/studies")
def list_studies(case_id: uuid.UUID, caller: Caller, session: SessionDep) -> StudiesPublic:
    return service.studies(
        session=session, principal=caller.principal, ctx=caller.ctx, case_id=case_id
    )
