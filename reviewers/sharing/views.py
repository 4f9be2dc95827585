"""Share links of a case, for its patient: ``/api/cases/{case_id}/share-links``."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from portal.deps import BoxDep, Caller, PageDep, SessionDep, SettingsDep
from portal.pagination import Page
from reviewers.sharing import service
from reviewers.sharing.models import ShareLinkCreate, ShareLinkIssued, ShareLinkPublic

router = APIRouter(prefix="/api/cases/{case_id}/share-links", tags=["sharing"])


@router.post("", status_code=201, summary="Share the delivered opinion through a link")
def create_link(
    case_id: uuid.UUID,
    caller: Caller,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
    data: ShareLinkCreate | None = None,
) -> ShareLinkIssued:
    """The URL (with its secret) and the access code are in this answer only."""
    link, token, code = service.create_link(
        session=session,
        box=box,
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        data=data or ShareLinkCreate(),
    )
    return ShareLinkIssued(
        id=link.id,
        url=service.share_url(settings, token),
        expires_at=link.expires_at,
        images=link.images,
        access_code=service.readable_code(code) if code else None,
    )


@router.get("", summary="The case's share links (without their secrets)")
def list_links(
    case_id: uuid.UUID, caller: Caller, session: SessionDep, page: PageDep
) -> Page[ShareLinkPublic]:
    items, next_cursor = service.list_links(
        session=session, principal=caller.principal, case_id=case_id, page=page
    )
    return Page(items=items, next=next_cursor)


@router.delete("/{link_id}", status_code=204, summary="Revoke a share link at once")
def revoke_link(
    case_id: uuid.UUID, link_id: uuid.UUID, caller: Caller, session: SessionDep
) -> Response:
    service.revoke_link(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        link_id=link_id,
    )
    return Response(status_code=204)
