"""DICOMweb routes, rooted at ``/api/cases/{case_id}/dicomweb`` (PS3.18 paths and media types):
QIDO-RS searches, WADO-RS instances and metadata, STOW-RS. Frames, bulk data and rendered
images are in ``pixel_views``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from portal.deps import SessionDep, SettingsDep, vault_of
from portal.dicomweb import qido, retrieve, service, stow
from portal.dicomweb.attributes import Level
from portal.dicomweb.deps import DicomwebCallerDep
from portal.dicomweb.http import (
    DICOM_JSON,
    INSTANCE,
    SERIES,
    STUDY,
    accepted,
    check_json,
    json_answer,
    multipart_stream,
    root_url,
)
from portal.errors import NotAcceptable
from portal.i18n import _
from portal.intake.multipart import MultipartStream
from portal.intake.views import upload_capacity

router = APIRouter(prefix="/api/cases/{case_id}/dicomweb", tags=["dicomweb"])


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
    check_json(request)
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
    return json_answer(found.items, found.warnings)


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

    return multipart_stream(parts(), "application/dicom")


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
        _(
            "The instances are sent as stored (transfer syntax %(syntax)s); ask for "
            'multipart/related; type="application/dicom" with transfer-syntax=* or that syntax.',
            syntax=stored,
        )
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
    check_json(request)
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
    return json_answer(items)


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


# -- STOW-RS ------------------------------------------------------------------------------


async def _store(
    request: Request,
    case_id: uuid.UUID,
    caller: DicomwebCallerDep,
    session: SessionDep,
    settings: SettingsDep,
    study: str | None,
) -> Response:
    """Like every upload: the body is read on the event loop with a stall deadline, the work
    runs on the upload threads, and an account has a bounded number of uploads in flight."""
    capacity = upload_capacity(request)
    with capacity.admit(caller.principal.user_id):
        case = await anyio.to_thread.run_sync(  # who may store here is told before what was sent
            lambda: service.storable_case(session=session, caller=caller, case_id=case_id)
        )
        stow.check_content_type(request.headers.get("content-type", ""))
        stream = MultipartStream(
            request.headers["content-type"],
            request.stream().__aiter__(),
            media_type="multipart/related",
            refusal=stow.REFUSAL,
            stall_seconds=settings.upload_stall_seconds,
        )
        await stream.prefetch()  # a client that sends a few bytes and stops holds no thread
        vault = vault_of(request)
        root = root_url(request, case_id)
        result = await capacity.run(
            lambda: service.store(
                session=session,
                vault=vault,
                settings=settings,
                caller=caller,
                case=case,
                stream=stream,
                study_uid=study,
                root_url=root,
            )
        )
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
