"""DICOMweb routes, rooted at ``/api/cases/{case_id}/dicomweb`` (PS3.18 paths and media types)."""

from __future__ import annotations

import io
import secrets
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from PIL import Image

from portal.deps import SessionDep, SettingsDep, vault_of
from portal.dicomweb import frames, qido, retrieve, service, stow
from portal.dicomweb.attributes import Level
from portal.dicomweb.deps import DicomwebCallerDep
from portal.errors import BadRequest, NotAcceptable, NotFound
from portal.intake.multipart import MultipartStream
from portal.viewer.views import viewer_state

router = APIRouter(prefix="/api/cases/{case_id}/dicomweb", tags=["dicomweb"])

DICOM_JSON = "application/dicom+json"
NATIVE = "1.2.840.10008.1.2.1"
STUDY = "/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{instance}"


def root_url(request: Request, case_id: uuid.UUID) -> str:
    return f"{str(request.base_url).rstrip('/')}/api/cases/{case_id}/dicomweb"


def accepted(request: Request) -> list[tuple[str, dict[str, str]]]:
    """The Accept header as (media type, parameters), best first; a multipart range stands for
    the ``type`` of its parts. No header accepts anything."""
    ranges: list[tuple[float, int, str, dict[str, str]]] = []
    for position, item in enumerate(request.headers.get("accept", "*/*").split(",")):
        media_type, *raw = (piece.strip() for piece in item.split(";"))
        params = {}
        for piece in raw:
            name, _, value = piece.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
        try:
            quality = float(params.pop("q", "1"))
        except ValueError:
            quality = 1.0
        media_type = media_type.lower()
        if media_type == "multipart/related":
            media_type = params.pop("type", "*/*").lower()
        ranges.append((-quality, position, media_type, params))
    return [(media_type, params) for _, _, media_type, params in sorted(ranges) if media_type]


def _json(items: Any, warnings: Iterable[str] = ()) -> JSONResponse:
    headers = {"Warning": ", ".join(f'299 portal "{text}"' for text in warnings)}
    return JSONResponse(
        items, media_type=DICOM_JSON, headers=headers if headers["Warning"] else None
    )


def _check_json(request: Request) -> None:
    wanted = {media_type for media_type, _ in accepted(request)}
    if not wanted & {"*/*", "application/*", DICOM_JSON, "application/json"}:
        raise NotAcceptable(f"This resource is given as {DICOM_JSON}.")


def _multipart_bytes(parts: list[tuple[str, bytes]], part_type: str) -> Response:
    """A multipart/related answer of parts already in memory (frames): one body, no stream."""
    boundary = secrets.token_hex(16)
    body = bytearray()
    for content_type, data in parts:
        body += f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode()
        body += data
        body += b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    media_type = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return Response(bytes(body), media_type=media_type)


def _multipart(parts: Iterable[tuple[str, Iterable[bytes]]], part_type: str) -> StreamingResponse:
    """A multipart/related answer streamed part by part (instances, read from storage)."""
    boundary = secrets.token_hex(16)

    def body() -> Iterator[bytes]:
        for content_type, chunks in parts:
            yield f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode()
            yield from chunks
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    media_type = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return StreamingResponse(body(), media_type=media_type)


# -- QIDO-RS -----------------------------------------------------------------------------


def _search(
    request: Request,
    case_id: uuid.UUID,
    caller: DicomwebCallerDep,
    session: SessionDep,
    level: Level,
    study: str | None = None,
    series: str | None = None,
) -> Response:
    _check_json(request)
    query = qido.parse(
        level, request.query_params.multi_items(), study_uid=study, series_uid=series
    )
    found = service.search(
        session=session,
        caller=caller,
        case_id=case_id,
        query=query,
        root_url=root_url(request, case_id),
    )
    return _json(found.items, found.warnings)


@router.get("/studies", summary="QIDO-RS: search the case's studies")
def search_studies(
    request: Request, case_id: uuid.UUID, caller: DicomwebCallerDep, session: SessionDep
) -> Response:
    return _search(request, case_id, caller, session, Level.study)


@router.get("/series", summary="QIDO-RS: search all series of the case")
def search_all_series(
    request: Request, case_id: uuid.UUID, caller: DicomwebCallerDep, session: SessionDep
) -> Response:
    return _search(request, case_id, caller, session, Level.series)


@router.get("/instances", summary="QIDO-RS: search all instances of the case")
def search_all_instances(
    request: Request, case_id: uuid.UUID, caller: DicomwebCallerDep, session: SessionDep
) -> Response:
    return _search(request, case_id, caller, session, Level.instance)


@router.get(STUDY + "/series", summary="QIDO-RS: search a study's series")
def search_series(
    request: Request,
    case_id: uuid.UUID,
    study: str,
    caller: DicomwebCallerDep,
    session: SessionDep,
) -> Response:
    return _search(request, case_id, caller, session, Level.series, study)


@router.get(STUDY + "/instances", summary="QIDO-RS: search a study's instances")
def search_study_instances(
    request: Request,
    case_id: uuid.UUID,
    study: str,
    caller: DicomwebCallerDep,
    session: SessionDep,
) -> Response:
    return _search(request, case_id, caller, session, Level.instance, study)


@router.get(SERIES + "/instances", summary="QIDO-RS: search a series' instances")
def search_instances(
    request: Request,
    case_id: uuid.UUID,
    study: str,
    series: str,
    caller: DicomwebCallerDep,
    session: SessionDep,
) -> Response:
    return _search(request, case_id, caller, session, Level.instance, study, series)


# -- WADO-RS: instances and metadata ------------------------------------------------------


def _retrieve(
    request: Request,
    case_id: uuid.UUID,
    caller: DicomwebCallerDep,
    session: SessionDep,
    study: str,
    series: str | None = None,
    instance: str | None = None,
) -> Response:
    found, wrapped = service.instances(
        session=session,
        caller=caller,
        case_id=case_id,
        study_uid=study,
        series_uid=series,
        instance_uid=instance,
        action="dicomweb.retrieve",
    )
    _negotiate_instances(request, {row.instance.transfer_syntax_uid for row in found})
    vault = vault_of(request)

    def parts() -> Iterator[tuple[str, Iterator[bytes]]]:
        for row in found:
            part_type = f"application/dicom; transfer-syntax={row.instance.transfer_syntax_uid}"
            yield part_type, retrieve.instance_bytes(vault, wrapped, row)

    return _multipart(parts(), "application/dicom")


def _negotiate_instances(request: Request, syntaxes: set[str]) -> None:
    """Instances are sent as stored (never transcoded): the client must accept that."""
    for media_type, params in accepted(request):
        if media_type not in {"application/dicom", "*/*", "application/*"}:
            continue
        wanted = params.get("transfer-syntax")
        if wanted in {None, "*"} or syntaxes == {wanted}:
            return
    stored = ", ".join(sorted(syntaxes))
    raise NotAcceptable(
        f"The instances are sent as stored (transfer syntax {stored}); ask for "
        'multipart/related; type="application/dicom" with transfer-syntax=* or that syntax.'
    )


@router.get(STUDY, summary="WADO-RS: retrieve a study")
def retrieve_study(
    request: Request, case_id: uuid.UUID, study: str, caller: DicomwebCallerDep, session: SessionDep
) -> Response:
    return _retrieve(request, case_id, caller, session, study)


@router.get(SERIES, summary="WADO-RS: retrieve a series")
def retrieve_series(
    request: Request,
    case_id: uuid.UUID,
    study: str,
    series: str,
    caller: DicomwebCallerDep,
    session: SessionDep,
) -> Response:
    return _retrieve(request, case_id, caller, session, study, series)


@router.get(INSTANCE, summary="WADO-RS: retrieve an instance")
def retrieve_instance(
    request: Request,
    case_id: uuid.UUID,
    study: str,
    series: str,
    instance: str,
    caller: DicomwebCallerDep,
    session: SessionDep,
) -> Response:
    return _retrieve(request, case_id, caller, session, study, series, instance)


def _metadata(
    request: Request,
    case_id: uuid.UUID,
    caller: DicomwebCallerDep,
    session: SessionDep,
    study: str,
    series: str | None = None,
    instance: str | None = None,
) -> Response:
    _check_json(request)
    found, wrapped = service.instances(
        session=session,
        caller=caller,
        case_id=case_id,
        study_uid=study,
        series_uid=series,
        instance_uid=instance,
        action="dicomweb.metadata",
    )
    items = list(
        retrieve.metadata_of(vault_of(request), wrapped, found, root_url(request, case_id))
    )
    return _json(items)


@router.get(STUDY + "/metadata", summary="WADO-RS: a study's metadata")
def study_metadata(
    request: Request, case_id: uuid.UUID, study: str, caller: DicomwebCallerDep, session: SessionDep
) -> Response:
    return _metadata(request, case_id, caller, session, study)


@router.get(SERIES + "/metadata", summary="WADO-RS: a series' metadata")
def series_metadata(
    request: Request,
    case_id: uuid.UUID,
    study: str,
    series: str,
    caller: DicomwebCallerDep,
    session: SessionDep,
) -> Response:
    return _metadata(request, case_id, caller, session, study, series)


@router.get(INSTANCE + "/metadata", summary="WADO-RS: an instance's metadata")
def instance_metadata(
    request: Request,
    case_id: uuid.UUID,
    study: str,
    series: str,
    instance: str,
    caller: DicomwebCallerDep,
    session: SessionDep,
) -> Response:
    return _metadata(request, case_id, caller, session, study, series, instance)


# -- WADO-RS: frames, bulk data, rendered ------------------------------------------------


def _one_instance(
    session: SessionDep,
    caller: DicomwebCallerDep,
    case_id: uuid.UUID,
    uids: tuple[str, str, str],
    action: str,
) -> tuple[retrieve.Located, bytes]:
    found, wrapped = service.instances(
        session=session,
        caller=caller,
        case_id=case_id,
        study_uid=uids[0],
        series_uid=uids[1],
        instance_uid=uids[2],
        action=action,
    )
    return found[0], wrapped


@router.get(INSTANCE + "/frames/{frame_list}", summary="WADO-RS: frames of an instance")
def retrieve_frames(
    request: Request,
    case_id: uuid.UUID,
    study: str,
    series: str,
    instance: str,
    frame_list: str,
    caller: DicomwebCallerDep,
    session: SessionDep,
) -> Response:
    numbers = frames.parse_frame_list(frame_list)
    located, wrapped = _one_instance(
        session, caller, case_id, (study, series, instance), "dicomweb.frames"
    )
    syntax = located.instance.transfer_syntax_uid
    native = frames.wants_native(accepted(request), syntax)
    vault, cache = vault_of(request), request.app.state.dicomweb_frames
    pixels = [
        frames.cached_frame(cache, vault, wrapped, located, n, native=native) for n in numbers
    ]
    part_type = frames.part_type(accepted(request), syntax, native=native)
    return _multipart_bytes([(part_type, data) for data in pixels], part_type.split(";")[0])


@router.get(INSTANCE + "/bulkdata/{tag}", summary="WADO-RS: a bulk data value")
def retrieve_bulkdata(
    request: Request,
    case_id: uuid.UUID,
    study: str,
    series: str,
    instance: str,
    tag: str,
    caller: DicomwebCallerDep,
    session: SessionDep,
) -> Response:
    located, wrapped = _one_instance(
        session, caller, case_id, (study, series, instance), "dicomweb.bulkdata"
    )
    vault = vault_of(request)
    if tag.upper() == "7FE00010":
        where = frames.layout(vault, wrapped, located)
        native = frames.wants_native(accepted(request), located.instance.transfer_syntax_uid)
        read = frames.native_frame if native else frames.stored_frame
        pixels = [read(vault, wrapped, located, where, n) for n in range(1, where.frames + 1)]
        part_type = "application/octet-stream"
        return _multipart_bytes([(part_type, data) for data in pixels], part_type)
    try:
        number = int(tag, 16)
    except ValueError:
        raise NotFound("No such bulk data.") from None
    with retrieve.open_stored(vault, wrapped, located, retrieve.HEADER_WINDOW) as source:
        ds, _ = retrieve.read_header(source)
    value = retrieve.bulk_value(ds, number)
    return _multipart_bytes([("application/octet-stream", value)], "application/octet-stream")


def _rendered(
    request: Request,
    case_id: uuid.UUID,
    caller: DicomwebCallerDep,
    session: SessionDep,
    uids: tuple[str, str, str],
    frame: int,
    max_side: int | None,
) -> Response:
    wanted = [media_type for media_type, _ in accepted(request)]
    kinds = [t for t in wanted if t in {"image/jpeg", "image/png", "image/*", "*/*"}]
    if not kinds:
        raise NotAcceptable("Rendered images are given as image/jpeg or image/png.")
    located, _ = _one_instance(session, caller, case_id, uids, "dicomweb.rendered")
    png = service.rendered(
        session=session,
        vault=vault_of(request),
        state=viewer_state(request),
        located=located,
        frame=frame,
        max_side=max_side,
    )
    if kinds[0] == "image/png":
        return Response(png, media_type="image/png")
    with Image.open(io.BytesIO(png)) as image:
        out = io.BytesIO()
        image.convert("RGB" if image.mode not in {"L", "RGB"} else image.mode).save(
            out, format="JPEG", quality=90
        )
    return Response(out.getvalue(), media_type="image/jpeg")


def _viewport(value: str | None) -> int | None:
    if value is None:
        return None
    sizes = [part.strip() for part in value.split(",")[:2]]
    if not all(size.isdigit() and 0 < int(size) <= 4096 for size in sizes):
        raise BadRequest("viewport is width,height in pixels (at most 4096).")
    return max(int(size) for size in sizes)


@router.get(INSTANCE + "/rendered", summary="WADO-RS: an instance rendered (first frame)")
def rendered_instance(
    request: Request,
    case_id: uuid.UUID,
    study: str,
    series: str,
    instance: str,
    caller: DicomwebCallerDep,
    session: SessionDep,
    viewport: str | None = None,
) -> Response:
    uids = (study, series, instance)
    return _rendered(request, case_id, caller, session, uids, 1, _viewport(viewport))


@router.get(INSTANCE + "/frames/{frame_list}/rendered", summary="WADO-RS: a frame rendered")
def rendered_frame(
    request: Request,
    case_id: uuid.UUID,
    study: str,
    series: str,
    instance: str,
    frame_list: str,
    caller: DicomwebCallerDep,
    session: SessionDep,
    viewport: str | None = None,
) -> Response:
    numbers = frames.parse_frame_list(frame_list)
    if len(numbers) != 1:
        raise BadRequest("Ask for one frame at a time to have it rendered.")
    uids = (study, series, instance)
    return _rendered(request, case_id, caller, session, uids, numbers[0], _viewport(viewport))


@router.get(INSTANCE + "/thumbnail", summary="WADO-RS: an instance's thumbnail")
def instance_thumbnail(
    request: Request,
    case_id: uuid.UUID,
    study: str,
    series: str,
    instance: str,
    caller: DicomwebCallerDep,
    session: SessionDep,
    viewport: str | None = None,
) -> Response:
    side = _viewport(viewport) or 128
    return _rendered(request, case_id, caller, session, (study, series, instance), 1, side)


@router.get(SERIES + "/thumbnail", summary="WADO-RS: a series' thumbnail")
def series_thumbnail(
    request: Request,
    case_id: uuid.UUID,
    study: str,
    series: str,
    caller: DicomwebCallerDep,
    session: SessionDep,
    viewport: str | None = None,
) -> Response:
    found, _ = service.instances(
        session=session,
        caller=caller,
        case_id=case_id,
        study_uid=study,
        series_uid=series,
        action="dicomweb.rendered",
    )
    middle = found[len(found) // 2].instance.sop_instance_uid
    side = _viewport(viewport) or 128
    return _rendered(request, case_id, caller, session, (study, series, middle), 1, side)


# -- STOW-RS ------------------------------------------------------------------------------


async def _store(
    request: Request,
    case_id: uuid.UUID,
    caller: DicomwebCallerDep,
    session: SessionDep,
    settings: SettingsDep,
    study: str | None,
) -> Response:
    await anyio.to_thread.run_sync(  # who may store here is told before what was sent
        lambda: service.storable_case(session=session, caller=caller, case_id=case_id)
    )
    stow.check_content_type(request.headers.get("content-type", ""))
    body = request.stream().__aiter__()
    content_type = request.headers["content-type"]
    vault = vault_of(request)
    root = root_url(request, case_id)

    def run() -> stow.StoreAnswer:
        stream = MultipartStream(
            content_type, body, media_type="multipart/related", refusal=stow.REFUSAL
        )
        return service.store(
            session=session,
            vault=vault,
            settings=settings,
            caller=caller,
            case_id=case_id,
            stream=stream,
            study_uid=study,
            root_url=root,
        )

    result = await anyio.to_thread.run_sync(run)
    return JSONResponse(result.body, status_code=result.status, media_type=DICOM_JSON)


@router.post("/studies", summary="STOW-RS: store instances in the case")
async def store_instances(
    request: Request,
    case_id: uuid.UUID,
    caller: DicomwebCallerDep,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    return await _store(request, case_id, caller, session, settings, None)


@router.post(STUDY, summary="STOW-RS: store instances of one study in the case")
async def store_study_instances(
    request: Request,
    case_id: uuid.UUID,
    study: str,
    caller: DicomwebCallerDep,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    return await _store(request, case_id, caller, session, settings, study)
