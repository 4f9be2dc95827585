"""Pages: "Forgot your password?" (ask for a link) and the link's page (choose a new one)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response, status
from fastapi.responses import RedirectResponse

from portal import i18n
from portal.accounts import password_reset
from portal.accounts.deps import PresessionForm
from portal.accounts.pages import form_page
from portal.deps import AnonymousCtx, BoxDep, SessionDep, SettingsDep
from portal.errors import PortalError, http_status
from portal.inputs import SingleLineText

router = APIRouter(include_in_schema=False)

TOKEN_MAX_LENGTH = 200


@router.get("/password-reset")
def ask_page(request: Request, settings: SettingsDep, box: BoxDep) -> Response:
    context = {"email": "", "sent": None, "error": None}
    return form_page(request, settings, box, "accounts/password_reset_ask.html", context)


@router.post("/password-reset", dependencies=[PresessionForm])
def ask(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
    ctx: AnonymousCtx,
    email: Annotated[SingleLineText, Form(max_length=254)],
) -> Response:
    """One answer for every address, known, unknown or over the limit (docs/accounts.md)."""
    password_reset.request_reset(session=session, settings=settings, box=box, ctx=ctx, email=email)
    context = {"email": "", "sent": i18n.gettext(password_reset.REQUEST_RECEIVED), "error": None}
    return form_page(request, settings, box, "accounts/password_reset_ask.html", context)


def _invalid_link_page(request: Request, settings: SettingsDep, box: BoxDep) -> Response:
    error = password_reset.ResetLinkInvalid()
    context = {"email": "", "sent": None, "error": error.message}
    return form_page(
        request,
        settings,
        box,
        "accounts/password_reset_ask.html",
        context,
        http_status(error),
    )


@router.get("/password-reset/{token}")
def choose_page(
    request: Request, token: str, session: SessionDep, settings: SettingsDep, box: BoxDep
) -> Response:
    """The mailed link: a form for the new password, if the link still works."""
    if len(token) > TOKEN_MAX_LENGTH or not token.isascii():
        return _invalid_link_page(request, settings, box)
    if password_reset.usable_link(session=session, token=token) is None:
        return _invalid_link_page(request, settings, box)
    context = {"token": token, "error": None}
    return form_page(request, settings, box, "accounts/password_reset.html", context)


@router.post("/password-reset/{token}", dependencies=[PresessionForm])
def choose(
    request: Request,
    token: str,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
    ctx: AnonymousCtx,
    password: Annotated[str, Form(max_length=1024)],
    password_again: Annotated[str, Form(max_length=1024)],
) -> Response:
    if len(token) > TOKEN_MAX_LENGTH or not token.isascii():
        return _invalid_link_page(request, settings, box)
    if password != password_again:
        context = {
            "token": token,
            "error": i18n.gettext("The two passwords are not the same. Type them again."),
        }
        return form_page(request, settings, box, "accounts/password_reset.html", context, 422)
    try:
        password_reset.reset_password(
            session=session, settings=settings, box=box, ctx=ctx, token=token, password=password
        )
    except password_reset.ResetLinkInvalid:
        return _invalid_link_page(request, settings, box)
    except PortalError as exc:
        context = {"token": token, "error": exc.message}
        return form_page(
            request, settings, box, "accounts/password_reset.html", context, http_status(exc)
        )
    return RedirectResponse("/login?reset=1", status_code=status.HTTP_303_SEE_OTHER)
