"""The record page: a PDF's pages or a photo, as images the server rendered, and the original."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from portal.deps import SessionDep, vault_of
from portal.records import service
from portal.records.views import record_renderer, record_state
from portal.web.deps import PageCaller
from portal.web.templating import render

router = APIRouter(include_in_schema=False)

PAGES_PER_SCREEN = 20
"""Pages stacked on one screen (lazily loaded); longer documents get previous/next links."""
LARGE_WIDTH = service.MAX_WIDTH
DISPLAY_WIDTH = 880
"""CSS pixels a page takes on screen at most: the width of a card in the page layout."""


@router.get("/cases/{case_id}/records/{file_id}")
def record_page(
    request: Request,
    case_id: uuid.UUID,
    file_id: uuid.UUID,
    caller: PageCaller,
    session: SessionDep,
    first: int = 1,
) -> Response:
    """Pages ``first`` to ``first + 19``, stacked; the original can be downloaded."""
    record = service.record_for_viewer(
        session=session,
        vault=vault_of(request),
        state=record_state(request),
        renderer=record_renderer(request),
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        file_id=file_id,
    )
    first = min(max(first, 1), max(record.page_count, 1))
    first -= (first - 1) % PAGES_PER_SCREEN  # screens start at 1, 21, 41, ...
    shown = record.pages[first - 1 : first - 1 + PAGES_PER_SCREEN]
    context = {
        "record": record,
        "shown": shown,
        "previous_first": first - PAGES_PER_SCREEN if first > 1 else None,
        "next_first": first + PAGES_PER_SCREEN if first + len(shown) <= record.page_count else None,
        "large_width": LARGE_WIDTH,
        "display_width": DISPLAY_WIDTH,
    }
    return render(request, "cases/record.html", context)
