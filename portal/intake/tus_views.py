"""tus 1.0.0 endpoints at ``/api/uploads`` (https://tus.io/protocols/resumable-upload)."""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Callable
from email.utils import format_datetime

import anyio
from fastapi import APIRouter, Request, Response

from portal.deps import Caller, SessionDep, SettingsDep, vault_of
from portal.errors import InvalidInput, PortalError, PreconditionFailed, UnsupportedMediaType
from portal.i18n import _, gettext
from portal.intake import tus, tus_creation
from portal.intake.models import TusUpload, UploadProgress, UploadStatus
from portal.intake.streams import BodyReader
from portal.intake.views import upload_capacity
from portal.settings import Settings

router = APIRouter(prefix="/api/uploads", tags=["uploads"])
OFFSET_STREAM = "application/offset+octet-stream"


def _check_version(request: Request) -> None:
    if request.headers.get("tus-resumable") != tus.TUS_VERSION:
        raise PreconditionFailed(_("Send Tus-Resumable: %(version)s.", version=tus.TUS_VERSION))


def _headers(upload: TusUpload | None = None, **extra: str) -> dict[str, str]:
    headers = {"Tus-Resumable": tus.TUS_VERSION, "Cache-Control": "no-store", **extra}
    if upload is not None:
        headers["Upload-Offset"] = str(upload.offset)
        headers["Upload-Length"] = str(upload.length)
        headers["Upload-Expires"] = format_datetime(upload.expires_at, usegmt=True)
    return headers


def _int_header(request: Request, name: str) -> int:
    value = request.headers.get(name, "")
    if not value.isdigit():
        raise InvalidInput(_("%(header)s must be a non-negative whole number.", header=name))
    return int(value)


@router.options("")
def capabilities(settings: SettingsDep) -> Response:
    return Response(
        status_code=204,
        headers={
            "Tus-Resumable": tus.TUS_VERSION,
            "Tus-Version": tus.TUS_VERSION,
            "Tus-Extension": tus.EXTENSIONS,
            "Tus-Max-Size": str(settings.tus_max_bytes),
            "Tus-Checksum-Algorithm": ",".join(tus.CHECKSUMS),
        },
    )


@router.post("", status_code=201)
async def create(
    request: Request, caller: Caller, session: SessionDep, settings: SettingsDep
) -> Response:
    """Creation (and creation-with-upload when the request carries a body)."""
    _check_version(request)
    if request.headers.get("upload-defer-length"):
        raise InvalidInput(_("Upload-Length must be given; deferred lengths are not supported."))
    length = _int_header(request, "upload-length")
    metadata = tus.parse_metadata(request.headers.get("upload-metadata"))
    sends_data = request.headers.get("content-type") == OFFSET_STREAM or length == 0
    capacity = upload_capacity(request)
    # Counted before the upload exists: a refused request leaves no upload holding quota.
    with capacity.admit(caller.user.id) if sends_data else contextlib.nullcontext():
        upload = await anyio.to_thread.run_sync(
            lambda: tus_creation.create_upload(
                session=session,
                settings=settings,
                principal=caller.principal,
                ctx=caller.ctx,
                length=length,
                metadata=metadata,
            )
        )
        if sends_data:
            whole = request.headers.get("content-length") == str(length) and length > 0
            upload = await _first_data(request, caller, session, settings, upload, whole=whole)
    if upload.status == UploadStatus.assembling:
        request.app.state.jobs.wake()  # a ZIP sent whole: its import starts at once
    location = str(request.url_for("upload_status", upload_id=str(upload.id)).path)
    return Response(status_code=201, headers=_headers(upload, Location=location))


async def _first_data(
    request: Request,
    caller: Caller,
    session: SessionDep,
    settings: Settings,
    upload: TusUpload,
    *,
    whole: bool,
) -> TusUpload:
    """Creation-with-upload's body. If it fails (stall, checksum) the answer carries no
    address, so nobody could resume the upload: it is terminated rather than left to hold
    its reservation of the case's quota until it expires."""
    try:
        return await _append(
            request, caller, session, settings, upload, offset=None if whole else 0
        )
    except PortalError:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(
                lambda: tus.abandon(
                    session=session, vault=vault_of(request), ctx=caller.ctx, upload=upload
                )
            )
        raise


@router.head("/{upload_id}")
def head(upload_id: uuid.UUID, request: Request, caller: Caller, session: SessionDep) -> Response:
    _check_version(request)
    upload = tus.owned_upload(session=session, principal=caller.principal, upload_id=upload_id)
    return Response(status_code=200, headers=_headers(upload))


@router.patch("/{upload_id}")
async def patch(
    upload_id: uuid.UUID,
    request: Request,
    caller: Caller,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    _check_version(request)
    if request.headers.get("content-type") != OFFSET_STREAM:
        raise UnsupportedMediaType(
            _("PATCH bodies must be %(media_type)s.", media_type=OFFSET_STREAM)
        )
    offset = _int_header(request, "upload-offset")
    capacity = upload_capacity(request)
    with capacity.admit(caller.user.id), capacity.receiving(upload_id):
        upload = await anyio.to_thread.run_sync(
            lambda: tus.upload_to_append(
                session=session, principal=caller.principal, upload_id=upload_id
            )
        )
        upload = await _append(request, caller, session, settings, upload, offset=offset)
    if upload.status == UploadStatus.assembling:
        request.app.state.jobs.wake()  # this process starts the completion job at once
    return Response(status_code=204, headers=_headers(upload))


async def _append(
    request: Request,
    caller: Caller,
    session: SessionDep,
    settings: Settings,
    upload: TusUpload,
    *,
    offset: int | None,
) -> TusUpload:
    """Stream the body into the upload: at ``offset`` as a chunk, or (``None``) as the whole
    file straight into the ingest."""
    checksum = tus.Checksum.parse(request.headers.get("upload-checksum"))
    body = BodyReader(request.stream().__aiter__(), stall_seconds=settings.upload_stall_seconds)
    await body.prefetch()  # a client that sends a few bytes and stops holds no thread
    receive: Callable[..., TusUpload] = (
        tus.ingest_whole
        if offset is None
        else functools.partial(tus.append, offset=offset, disconnected=lambda: body.disconnected)
    )
    return await upload_capacity(request).run(
        lambda: receive(
            session=session,
            vault=vault_of(request),
            settings=settings,
            principal=caller.principal,
            ctx=caller.ctx,
            upload=upload,
            body=body,
            checksum=checksum,
        )
    )


@router.delete("/{upload_id}", status_code=204)
def terminate(
    upload_id: uuid.UUID, request: Request, caller: Caller, session: SessionDep
) -> Response:
    _check_version(request)
    upload = tus.upload_to_terminate(
        session=session, principal=caller.principal, upload_id=upload_id
    )
    tus.terminate(session=session, vault=vault_of(request), ctx=caller.ctx, upload=upload)
    return Response(status_code=204, headers=_headers())


@router.get("/{upload_id}", name="upload_status")
def upload_status(upload_id: uuid.UUID, caller: Caller, session: SessionDep) -> UploadProgress:
    """Not part of tus: how far the upload is (``receiving`` → ``assembling`` → ``complete``
    or ``failed``), a ZIP's entries imported so far, and once complete, what was accepted."""
    upload = tus.owned_upload(session=session, principal=caller.principal, upload_id=upload_id)
    return UploadProgress.model_validate(
        upload,
        update={
            "result": tus.result_of(session=session, upload=upload),
            # A failure is stored as written (English, or the owner's language): shown in the
            # caller's where the catalogue knows it.
            "failure": gettext(upload.failure) if upload.failure else None,
        },
    )
