"""FastAPI dependencies shared by every domain's routes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import Depends, Query, Request
from sqlmodel import Session

from portal import i18n
from portal.access import Principal
from portal.accounts.models import AuthSession, Role, User
from portal.accounts.service import resolve_session
from portal.audit.service import AuditContext
from portal.errors import Forbidden, InvalidInput, NotAuthenticated
from portal.i18n import _
from portal.objects.texts import bind_vault
from portal.pagination import DEFAULT_LIMIT, MAX_CURSOR_LENGTH, MAX_LIMIT, PageRequest
from portal.sealing import SecretBox
from portal.settings import Settings
from storage.vault import Vault

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"
CSRF_PURPOSE = "csrf"


# Dependencies that only read the request or the app's state are ``async def``: FastAPI runs a
# plain ``def`` dependency in a worker thread, and a thread hop costs more than they do.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session for the request; it connects on first use, in whichever thread uses it.

    Closing it only talks to the database when a transaction is still open (a rollback):
    then it is closed in a worker thread, otherwise right here.
    """
    session = bind_vault(
        Session(request.app.state.engine, expire_on_commit=False), request.app.state.vault
    )
    try:
        yield session
    finally:
        if session.in_transaction():
            with anyio.CancelScope(shield=True):  # a client that hangs up must not leak it
                await anyio.to_thread.run_sync(session.close)
        else:
            session.close()


def vault_of(request: Request) -> Vault:
    """The app's vault (built in its lifespan): the only way to stored bytes."""
    vault: Vault = request.app.state.vault
    return vault


async def get_box(request: Request) -> SecretBox:
    box: SecretBox = request.app.state.box
    return box


async def refuse_nul_characters(request: Request) -> None:
    """422 for a NUL character in a JSON body or a query value: no text of ours may hold one,
    and PostgreSQL cannot store it (it would fail deep in a write, as a server error).

    Only routes that declare a JSON body are read: FastAPI has read (and kept) that body, at
    most 1 MiB, before this runs.
    """
    for name, value in request.query_params.multi_items():
        if "\x00" in value:
            raise InvalidInput(
                _("%(field)s: must not contain control characters (NUL).", field=_printable(name))
            )
    route = request.scope.get("route")
    if getattr(route, "body_field", None) is None:
        return  # no JSON body here (streaming uploads read their own, with their own limits)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type and not (media_type == "application/json" or media_type.endswith("+json")):
        return  # a form: FastAPI parsed it from the stream, and it is not JSON
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return  # FastAPI answers it as invalid JSON
    where = _nul_at(body, ())
    if where is not None:
        field = ".".join(_printable(str(part)) for part in where) or "body"
        raise InvalidInput(_("%(field)s: must not contain control characters (NUL).", field=field))


def _nul_at(value: object, path: tuple[str | int, ...]) -> tuple[str | int, ...] | None:
    """Where the first NUL character is: the path of the field holding it (or its key)."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = (*path, key) if "\x00" in key else _nul_at(item, (*path, key))
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_at(item, (*path, index))
            if found is not None:
                return found
    return None


def _printable(name: str) -> str:
    """A field name fit to quote back: control characters dropped, at most 40 characters."""
    return "".join(ch for ch in name if ch.isprintable())[:40]


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
BoxDep = Annotated[SecretBox, Depends(get_box)]


async def page_request(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="At most this many items on the page.")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(
            max_length=MAX_CURSOR_LENGTH,
            description="The `next` of the previous page; omit for the first page.",
        ),
    ] = None,
) -> PageRequest:
    """Keyset pagination parameters, the same on every list (``portal.pagination``)."""
    return PageRequest(limit=limit, cursor=cursor or None)


PageDep = Annotated[PageRequest, Depends(page_request)]


def csrf_token_for(box: SecretBox, auth_session: AuthSession) -> str:
    """The CSRF token of a session: an HMAC of its id, so nothing extra is stored."""
    return box.sign(CSRF_PURPOSE, str(auth_session.id))


async def client_context(request: Request) -> AuditContext:
    return AuditContext.for_request(
        client_ip=request.client.host if request.client else None,
        request_id=getattr(request.state, "request_id", None),
    )


AnonymousCtx = Annotated[AuditContext, Depends(client_context)]


class SignedInCaller:
    """The account, its session and how it authenticated (bearer header or cookie)."""

    def __init__(self, user: User, auth_session: AuthSession, ctx: AuditContext) -> None:
        self.user = user
        self.auth_session = auth_session
        self.principal = Principal(
            user_id=user.id, role=Role(user.role), session_id=auth_session.id
        )
        self.ctx = ctx.as_actor(user.id, user.role)


def _token_from(request: Request, settings: Settings) -> tuple[str, bool] | None:
    authorization = request.headers.get("authorization", "")
    scheme, _space, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip(), False
    cookie = request.cookies.get(settings.cookie_name)
    if cookie:
        return cookie, True
    return None


def authenticate(
    request: Request, session: SessionDep, settings: SettingsDep, box: BoxDep, ctx: AnonymousCtx
) -> SignedInCaller:
    """The caller of a sign-in token (bearer header) or session cookie (with its CSRF token)."""
    found = _token_from(request, settings)
    if found is None:
        raise NotAuthenticated()
    token, via_cookie = found
    user, auth_session = resolve_session(session=session, settings=settings, token=token)
    if via_cookie and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not box.verify(CSRF_PURPOSE, str(auth_session.id), sent):
            raise Forbidden(
                _(
                    "The form has expired or did not come from this site. "
                    "Reload the page and try again."
                )
            )
    return SignedInCaller(user, auth_session, ctx)


async def enrolling_caller(
    request: Request,
    caller: Annotated[SignedInCaller, Depends(authenticate)],
) -> SignedInCaller:
    """Any signed-in caller, including a staff session that may only set up TOTP."""
    return speaking_to(request, caller)


async def signed_in_caller(
    request: Request,
    caller: Annotated[SignedInCaller, Depends(authenticate)],
) -> SignedInCaller:
    """A fully signed-in caller; enrolment-only sessions are refused."""
    speaking_to(request, caller)
    if caller.auth_session.enrollment_only:
        raise Forbidden(_("Set up two-factor authentication before using the portal."))
    return caller


def caller_language(request: Request, user: User) -> str:
    """The language a signed-in API caller is answered in.

    A program signing in with a bearer token chooses per request: its ``Accept-Language``,
    when it names an interface language, comes first, then the account's setting. A browser
    (the session cookie) always sends ``Accept-Language``, so there the account's setting comes
    first, then the ``lang`` cookie, then ``Accept-Language``, as on pages.
    """
    accept_language = request.headers.get("accept-language")
    scheme, _space, _credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return i18n.from_accept_language(accept_language) or i18n.choose(account=user.language)
    return i18n.choose(
        account=user.language,
        cookie=request.cookies.get(i18n.LANGUAGE_COOKIE),
        accept_language=accept_language,
    )


def speaking_to(request: Request, caller: SignedInCaller) -> SignedInCaller:
    """Answer the rest of the request in the caller's language (called from an ``async``
    dependency, which runs in the request's own context, so the endpoint and the error
    handlers see it)."""
    i18n.language_var.set(caller_language(request, caller.user))
    return caller


EnrollingCaller = Annotated[SignedInCaller, Depends(enrolling_caller)]
Caller = Annotated[SignedInCaller, Depends(signed_in_caller)]
