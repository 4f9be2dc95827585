"""Share-link pages: the recipient's read-only pages under ``/shared/{token}`` (no account),
and the case page's forms with which the patient makes and revokes links.

The secret travels only in the path (the access log names the route template, never the
path) and each use is audited with the link's id. Every answer about a link says
``Referrer-Policy: no-referrer``, ``Cache-Control: no-store`` and ``X-Robots-Tag: noindex``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response
from sqlmodel import Session

from portal import access
from portal.accounts.deps import PresessionForm
from portal.accounts.models import User
from portal.accounts.pages import form_page
from portal.deps import AnonymousCtx, BoxDep, SessionDep, SettingsDep, vault_of
from portal.errors import TooManyRequests, http_status
from portal.inputs import SingleLineText
from portal.intake import service as intake_service
from portal.intake.schemas import StudiesPublic
from portal.pages import case_page as case_page_builder
from portal.sealing import SecretBox
from portal.settings import Settings
from portal.viewer import service as viewer_service
from portal.viewer.schemas import SeriesView
from portal.viewer.views import IMAGE_HEADERS, PNG, viewer_state
from portal.viewer.windows import window_request
from portal.web.deps import FormCaller
from portal.web.templating import render, see_other
from reviewers import opinions
from reviewers import pdf as opinion_pdf
from reviewers.sharing import recipient, service
from reviewers.sharing.models import MAX_DAYS, ShareLinkCreate

router = APIRouter(tags=["pages"], include_in_schema=False)

GRANT_COOKIE = "portal_share"
SHARED_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
}


def _shared(response: Response) -> Response:
    response.headers.update(SHARED_HEADERS)
    return response


def _open(
    request: Request, token: str, session: SessionDep, box: SecretBox, ctx: AnonymousCtx
) -> recipient.OpenLink:
    """The working link, once its access code (if any) was given in this browser."""
    opened = recipient.open_link(session=session, token=token, ctx=ctx)
    recipient.require_grant(box, opened, request.cookies.get(GRANT_COOKIE))
    return opened


def _open_images(
    request: Request, token: str, session: SessionDep, box: SecretBox, ctx: AnonymousCtx
) -> recipient.OpenLink:
    """The working link, as :func:`_open`, when it was made to show the images."""
    opened = _open(request, token, session, box, ctx)
    recipient.require_images(opened)
    return opened


def _code_form(
    request: Request,
    settings: Settings,
    box: SecretBox,
    token: str,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    context = {"action": f"/shared/{token}", "error": error}
    return _shared(form_page(request, settings, box, "shared/code.html", context, status_code))


# --- the recipient ---------------------------------------------------------------------------


@router.get("/shared/{token}")
def shared_opinion(
    request: Request,
    token: str,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
    ctx: AnonymousCtx,
) -> Response:
    """The opinion, its PDF and (if shared) the images; first the access code if one is set."""
    opened = recipient.open_link(session=session, token=token, ctx=ctx)
    if not recipient.holds_grant(box, opened, request.cookies.get(GRANT_COOKIE)):
        return _code_form(request, settings, box, token)
    recipient.record_use(session=session, opened=opened, action="share.view")
    case, opinion = opinions.readable_opinion(
        session=session,
        principal=opened.principal,
        ctx=opened.ctx,
        case_id=opened.case_id,
        action="opinion.read",
    )
    patient = session.get(User, case.patient_id)
    context: dict[str, Any] = {
        "case": case,
        "patient_name": patient.full_name if patient else "",
        "opinion": opinions.describe(session=session, opinion=opinion),
        "shared": True,
        "base": f"/shared/{token}",
        "pdf_url": f"/shared/{token}/opinion.pdf",
        "expires_at": opened.link.expires_at,
        "studies": _studies(session, opened),
    }
    session.commit()
    return _shared(render(request, "shared/opinion.html", context))


@router.post("/shared/{token}", dependencies=[PresessionForm])
def enter_code(
    request: Request,
    token: str,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
    ctx: AnonymousCtx,
    code: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """The access code: right, the browser keeps a grant for this link; wrong, the form again."""
    opened = recipient.open_link(session=session, token=token, ctx=ctx)
    try:
        grant = recipient.enter_code(session=session, box=box, opened=opened, code=code)
    except (recipient.WrongAccessCode, TooManyRequests) as exc:
        response = _code_form(
            request, settings, box, token, error=exc.message, status_code=http_status(exc)
        )
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    response = see_other(f"/shared/{token}")
    response.set_cookie(
        GRANT_COOKIE,
        grant,
        path=f"/shared/{token}",
        httponly=True,
        secure=settings.cookie_secure,
        samesite="strict",
    )
    return _shared(response)


@router.get("/shared/{token}/opinion.pdf")
def shared_pdf(
    request: Request, token: str, session: SessionDep, box: BoxDep, ctx: AnonymousCtx
) -> Response:
    """The same PDF the patient downloads."""
    opened = _open(request, token, session, box, ctx)
    recipient.record_use(session=session, opened=opened, action="share.pdf")
    document = opinions.pdf_document(
        session=session, principal=opened.principal, ctx=opened.ctx, case_id=opened.case_id
    )
    filename = f"second-opinion-{document.case_reference}.pdf"
    response = Response(
        opinion_pdf.render_opinion_pdf(document),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
    return _shared(response)


@router.get("/shared/{token}/viewer")
def shared_viewer(
    request: Request,
    token: str,
    session: SessionDep,
    box: BoxDep,
    ctx: AnonymousCtx,
    series: uuid.UUID | None = None,
) -> Response:
    """The built-in viewer on the shared images, read through the link's scoped principal."""
    opened = _open_images(request, token, session, box, ctx)
    recipient.record_use(session=session, opened=opened, action="share.viewer")
    studies = intake_service.studies(
        session=session, principal=opened.principal, ctx=opened.ctx, case_id=opened.case_id
    )
    ordered = [item.id for study in studies.studies for item in study.series]
    selected = (ordered[0] if ordered else None) if series is None else series
    case = access.case_for(session=session, principal=opened.principal, case_id=opened.case_id)
    context = {
        "case": case,
        "studies": studies,
        "selected": selected if selected in ordered else None,
        "viewer_path": f"/shared/{token}/viewer",
        "api_root": f"/shared/{token}",
        "back_url": f"/shared/{token}",
    }
    return _shared(render(request, "cases/viewer.html", context))


@router.get("/shared/{token}/series/{series_id}")
def shared_series(
    request: Request,
    token: str,
    series_id: uuid.UUID,
    session: SessionDep,
    box: BoxDep,
    ctx: AnonymousCtx,
    response: Response,
) -> SeriesView:
    """The viewer's description of a series (each opening is a use of the link)."""
    opened = _open_images(request, token, session, box, ctx)
    recipient.record_use(
        session=session, opened=opened, action="share.images", series=str(series_id)
    )
    _shared(response)
    return viewer_service.series_for_viewer(
        session=session,
        vault=vault_of(request),
        state=viewer_state(request),
        principal=opened.principal,
        ctx=opened.ctx,
        case_id=opened.case_id,
        series_id=series_id,
    )


@router.get("/shared/{token}/series/{series_id}/thumbnail")
def shared_thumbnail(
    request: Request,
    token: str,
    series_id: uuid.UUID,
    session: SessionDep,
    box: BoxDep,
    ctx: AnonymousCtx,
) -> Response:
    opened = _open_images(request, token, session, box, ctx)
    png = viewer_service.thumbnail(
        session=session,
        vault=vault_of(request),
        state=viewer_state(request),
        principal=opened.principal,
        ctx=opened.ctx,
        case_id=opened.case_id,
        series_id=series_id,
    )
    return _shared(Response(png, media_type=PNG, headers=IMAGE_HEADERS))


@router.get("/shared/{token}/instances/{instance_id}/frames/{frame}")
def shared_frame(
    request: Request,
    token: str,
    instance_id: uuid.UUID,
    frame: int,
    session: SessionDep,
    box: BoxDep,
    ctx: AnonymousCtx,
    preset: Annotated[str | None, Query(max_length=32)] = None,
    center: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    width: Annotated[float | None, Query(allow_inf_nan=False)] = None,
) -> Response:
    opened = _open_images(request, token, session, box, ctx)
    png = viewer_service.render_frame(
        session=session,
        vault=vault_of(request),
        state=viewer_state(request),
        principal=opened.principal,
        ctx=opened.ctx,
        case_id=opened.case_id,
        instance_id=instance_id,
        frame=frame,
        window=window_request(preset=preset, center=center, width=width),
    )
    return _shared(Response(png, media_type=PNG, headers=IMAGE_HEADERS))


def _studies(session: Session, opened: recipient.OpenLink) -> StudiesPublic | None:
    if not opened.link.images:
        return None
    return intake_service.studies(
        session=session, principal=opened.principal, ctx=opened.ctx, case_id=opened.case_id
    )


# --- the patient's forms on the case page ----------------------------------------------------


@router.post("/cases/{case_id}/share-links")
def make_link(
    request: Request,
    case_id: uuid.UUID,
    caller: FormCaller,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
    days: Annotated[int, Form(ge=1, le=MAX_DAYS)] = 14,
    images: Annotated[bool, Form()] = False,
    access_code: Annotated[bool, Form()] = False,
    note: Annotated[SingleLineText, Form(max_length=100)] = "",
) -> Response:
    """The case page with the new link and code, this once (never stored, never in a URL)."""
    data = ShareLinkCreate(days=days, images=images, access_code=access_code, note=note or None)
    link, token, code = service.create_link(
        session=session,
        box=box,
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        data=data,
    )
    context = case_page_builder.case_context(
        session=session, settings=settings, caller=caller, case_id=case_id
    )
    context["issued_share"] = {
        "url": service.share_url(settings, token),
        "code": service.readable_code(code) if code else None,
        "expires_at": link.expires_at,
    }
    response = render(request, "cases/case.html", context)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/cases/{case_id}/share-links/{link_id}/revoke")
def revoke_link(
    case_id: uuid.UUID, link_id: uuid.UUID, caller: FormCaller, session: SessionDep
) -> Response:
    service.revoke_link(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        link_id=link_id,
    )
    return see_other(f"/cases/{case_id}#share-links")
