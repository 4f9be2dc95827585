"""DICOMweb pixel routes: frames (as stored or decoded), bulk data, rendered images and
thumbnails of a case's instances (PS3.18 10.4.1.1.3 and 10.4.1.1.4)."""

from __future__ import annotations

import io
import uuid

from fastapi import APIRouter, Request, Response
from PIL import Image

from portal.deps import SessionDep, vault_of
from portal.dicomweb import frames, retrieve, service
from portal.dicomweb.deps import DicomwebCallerDep
from portal.dicomweb.http import INSTANCE, SERIES, accepted, multipart_bytes
from portal.errors import BadRequest, NotAcceptable, NotFound
from portal.i18n import _
from portal.viewer.views import viewer_state

router = APIRouter(prefix="/api/cases/{case_id}/dicomweb", tags=["dicomweb"])


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
    return multipart_bytes([(part_type, data) for data in pixels], part_type.split(";")[0])


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
        return multipart_bytes([(part_type, data) for data in pixels], part_type)
    try:
        number = int(tag, 16)
    except ValueError:
        raise NotFound(_("No such bulk data.")) from None
    with retrieve.open_stored(vault, wrapped, located, retrieve.HEADER_WINDOW) as source:
        ds, _end = retrieve.read_header(source)
    value = retrieve.bulk_value(ds, number)
    return multipart_bytes([("application/octet-stream", value)], "application/octet-stream")


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
        raise NotAcceptable(_("Rendered images are given as image/jpeg or image/png."))
    located, _case_file = _one_instance(session, caller, case_id, uids, "dicomweb.rendered")
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
        raise BadRequest(_("viewport is width,height in pixels (at most 4096)."))
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
        raise BadRequest(_("Ask for one frame at a time to have it rendered."))
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
