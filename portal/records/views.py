"""JSON and image API of the records viewer: a record's pages, each as an image we rendered.

Plain ``def`` routes: decrypting, PDFium and Pillow all block, so they run in the threadpool.
"""

from __future__ import annotations

import threading
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response

from portal.deps import Caller, SessionDep, vault_of
from portal.records import service
from portal.records.pool import RenderPool
from portal.records.render import JPEG, PNG
from portal.records.service import RecordState, RecordView

router = APIRouter(prefix="/api/cases", tags=["records"])

IMAGE_RESPONSE: dict[int | str, dict[str, object]] = {200: {"content": {PNG: {}, JPEG: {}}}}
_STATE_LOCK = threading.Lock()


def record_state(request: Request) -> RecordState:
    """The application's records state, made on first use (one per app, never at import)."""
    with _STATE_LOCK:
        state: RecordState | None = getattr(request.app.state, "records", None)
        if state is None:
            state = request.app.state.records = RecordState()
        return state


def record_renderer(request: Request) -> RenderPool:
    """The application's render workers, built in the lifespan."""
    renderer: RenderPool = request.app.state.record_renderer
    return renderer


@router.get("/{case_id}/records/{file_id}")
def record(
    case_id: uuid.UUID, file_id: uuid.UUID, request: Request, caller: Caller, session: SessionDep
) -> RecordView:
    """A PDF or photo: name, kind, size, pages with their image sizes, or why it cannot be shown."""
    return service.record_for_viewer(
        session=session,
        vault=vault_of(request),
        state=record_state(request),
        renderer=record_renderer(request),
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        file_id=file_id,
    )


@router.get(
    "/{case_id}/records/{file_id}/pages/{page}", response_class=Response, responses=IMAGE_RESPONSE
)
def record_page(
    case_id: uuid.UUID,
    file_id: uuid.UUID,
    page: int,
    request: Request,
    caller: Caller,
    session: SessionDep,
    width: int = service.DEFAULT_WIDTH,
) -> Response:
    """Page ``page`` (from 1) as PNG, or JPEG for a JPEG photo; ``width`` 200 to 2000 pixels."""
    image = service.render_record_page(
        session=session,
        vault=vault_of(request),
        state=record_state(request),
        renderer=record_renderer(request),
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        file_id=file_id,
        page=page,
        width=width,
    )
    extension = "jpg" if image.media_type == JPEG else "png"
    headers = {
        "Cache-Control": "no-store",  # patient data: kept by no browser or proxy
        "Content-Disposition": f'inline; filename="page-{page}.{extension}"',
    }
    return Response(image.data, media_type=image.media_type, headers=headers)
