"""Who is looking at a page: signed in by the session cookie only, CSRF-checked on forms."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Form, Request

from portal import i18n
from portal.accounts.service import resolve_session
from portal.deps import CSRF_PURPOSE, AnonymousCtx, BoxDep, SessionDep, SettingsDep, SignedInCaller
from portal.deps import csrf_token_for as csrf_token_for
from portal.errors import Forbidden, NotAuthenticated
from portal.i18n import N_
from portal.sealing import SecretBox
from portal.web.templating import page_language


class LoginRequired(NotAuthenticated):
    """A page needs a signed-in visitor: they are sent to the sign-in page and back."""

    def __init__(self, next_path: str) -> None:
        super().__init__()
        self.next_path = next_path


class EnrollmentRequired(Forbidden):
    """A staff account must set up two-step sign-in before anything else: sent to the set-up."""

    default_message = N_("Set up two-step sign-in with an authenticator app first.")


class FormExpired(Forbidden):
    default_message = N_(
        "The form has expired or did not come from this site. Go back, reload the page and try "
        "again."
    )


def enrolling_page_caller(
    request: Request, session: SessionDep, settings: SettingsDep, box: BoxDep, ctx: AnonymousCtx
) -> SignedInCaller:
    """Any signed-in visitor, including a staff session that may only set up two-step sign-in."""
    token = request.cookies.get(settings.cookie_name)
    if not token:
        raise LoginRequired(_here(request))
    try:
        user, auth_session = resolve_session(session=session, settings=settings, token=token)
    except NotAuthenticated:
        raise LoginRequired(_here(request)) from None
    caller = SignedInCaller(user, auth_session, ctx)
    request.state.page_caller = caller
    request.state.csrf_token = csrf_token_for(box, auth_session)
    return caller


async def speaking_caller(
    request: Request, caller: Annotated[SignedInCaller, Depends(enrolling_page_caller)]
) -> SignedInCaller:
    """The signed-in visitor, whose language the rest of the request speaks (an async
    dependency runs in the request's own context, so the language reaches the endpoint)."""
    i18n.language_var.set(page_language(request))
    return caller


async def page_caller(
    caller: Annotated[SignedInCaller, Depends(speaking_caller)],
) -> SignedInCaller:
    """The signed-in visitor of a page (form posts use ``FormCaller``, which checks CSRF)."""
    if caller.auth_session.enrollment_only:
        raise EnrollmentRequired()
    return caller


async def form_caller(
    caller: Annotated[SignedInCaller, Depends(page_caller)],
    box: BoxDep,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> SignedInCaller:
    """The visitor posting a form, which must carry their session's CSRF token."""
    return _with_form_token(caller, box, csrf_token)


def _with_form_token(caller: SignedInCaller, box: SecretBox, token: str) -> SignedInCaller:
    if not box.verify(CSRF_PURPOSE, str(caller.auth_session.id), token):
        raise FormExpired()
    return caller


def _here(request: Request) -> str:
    return quote(request.url.path)


PageCaller = Annotated[SignedInCaller, Depends(page_caller)]
EnrollingPageCaller = Annotated[SignedInCaller, Depends(speaking_caller)]
FormCaller = Annotated[SignedInCaller, Depends(form_caller)]


async def enrolling_form_caller(
    caller: EnrollingPageCaller,
    box: BoxDep,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> SignedInCaller:
    """Like ``FormCaller``, for the two-step set-up forms an enrolment-only session may post."""
    return _with_form_token(caller, box, csrf_token)


EnrollingFormCaller = Annotated[SignedInCaller, Depends(enrolling_form_caller)]
