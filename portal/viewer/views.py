"""JSON and image API of the browser viewer: a series, its frames as PNG, its thumbnail.

Plain ``def`` routes: decrypting, pydicom and Pillow all block, so they run in the threadpool.
"""

from __future__ import annotations

import threading
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from portal.deps import Caller, SessionDep, vault_of
from portal.viewer import service
from portal.viewer.cache import ViewerState
from portal.viewer.schemas import SeriesView
from portal.viewer.windows import window_request

router = APIRouter(prefix="/api/cases", tags=["viewer"])

PNG = "image/png"
PNG_RESPONSE: dict[int | str, dict[str, object]] = {200: {"content": {PNG: {}}}}
# Rendered frames are patient data: never stored by the browser or any proxy.
IMAGE_HEADERS = {"Cache-Control": "no-store"}
_STATE_LOCK = threading.Lock()


def viewer_state(request: Request) -> ViewerState:
    """The application's viewer state, made on first use (one per app, never at import)."""
    with _STATE_LOCK:
        state: ViewerState | None = getattr(request.app.state, "viewer", None)
        if state is None:
            state = request.app.state.viewer = ViewerState()
        return state


@router.get("/{case_id}/series/{series_id}")
def viewer_series(
    case_id: uuid.UUID, series_id: uuid.UUID, request: Request, caller: Caller, session: SessionDep
) -> SeriesView:
    """Instances in scrolling order with frame counts, default window, presets, geometry."""
    return service.series_for_viewer(
        session=session,
        vault=vault_of(request),
        state=viewer_state(request),
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        series_id=series_id,
    )


@router.get(
    "/{case_id}/instances/{instance_id}/frames/{frame}",
    response_class=Response,
    responses=PNG_RESPONSE,
)
def viewer_frame(
    case_id: uuid.UUID,
    instance_id: uuid.UUID,
    frame: int,
    request: Request,
    caller: Caller,
    session: SessionDep,
    preset: Annotated[str | None, Query(max_length=32)] = None,
    center: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    width: Annotated[float | None, Query(allow_inf_nan=False)] = None,
) -> Response:
    """Frame ``frame`` (from 1) as PNG; ``preset=`` or ``center=&width=``, else the image's own."""
    png = service.render_frame(
        session=session,
        vault=vault_of(request),
        state=viewer_state(request),
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        instance_id=instance_id,
        frame=frame,
        window=window_request(preset=preset, center=center, width=width),
    )
    return Response(png, media_type=PNG, headers=IMAGE_HEADERS)


@router.get(
    "/{case_id}/series/{series_id}/thumbnail", response_class=Response, responses=PNG_RESPONSE
)
def viewer_thumbnail(
    case_id: uuid.UUID, series_id: uuid.UUID, request: Request, caller: Caller, session: SessionDep
) -> Response:
    """The series' middle image, default window, at most 128 px on a side, as PNG."""
    png = service.thumbnail(
        session=session,
        vault=vault_of(request),
        state=viewer_state(request),
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        series_id=series_id,
    )
    return Response(png, media_type=PNG, headers=IMAGE_HEADERS)
