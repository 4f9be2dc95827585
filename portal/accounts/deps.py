"""Defences for the requests made before there is a session: sign-in and registration.

A cross-site page must not be able to sign a visitor's browser in to an account of its choice
(login CSRF), so these routes check where the request came from (``Origin`` and
``Sec-Fetch-Site``), the JSON routes take nothing but JSON (a cross-site form cannot send it
without a CORS preflight, which the portal never allows), and the pages' forms carry a
pre-session token: an HMAC of a random value held in its own cookie (signed double submit).
See docs/accounts.md ("Sign-in and registration forms").
"""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Form, Request, Response

from portal.deps import BoxDep, SettingsDep
from portal.errors import Forbidden, UnsupportedMediaType
from portal.i18n import N_
from portal.sealing import SecretBox
from portal.settings import Settings

PRESESSION_PURPOSE = "presession-csrf"
PRESESSION_COOKIE = "portal_presession"
_ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})


class CrossSiteRequest(Forbidden):
    default_message = N_(
        "This request came from another site. Open the portal's own sign-in page and try again."
    )


class PresessionFormExpired(Forbidden):
    default_message = N_(
        "The form has expired or did not come from this site. Reload the page and try again."
    )


class JsonRequired(UnsupportedMediaType):
    default_message = N_("Send the request body as JSON (Content-Type: application/json).")


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _own_origins(request: Request, settings: Settings) -> set[str]:
    """The configured public origin and the origin this request was addressed to."""
    origins = {_origin_of(settings.base_url)}
    host = request.headers.get("host")
    if host:
        origins.add(f"{request.url.scheme}://{host}".lower())
    return origins


async def same_origin(request: Request, settings: SettingsDep) -> None:
    """Refuse a request a browser marked as coming from another site.

    ``Sec-Fetch-Site`` is set by the browser itself and decides where present. ``Origin`` is
    compared unless it is ``null``, which the portal's own forms send too (their pages'
    ``Referrer-Policy: no-referrer`` makes Chromium send ``Origin: null`` with form posts)
    and so cannot tell anything apart. A request with neither header is not from a current
    browser's cross-site page: API clients such as curl or httpx pass, and the pages' forms
    are covered by their token as well.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site.lower() not in _ALLOWED_FETCH_SITES:
        raise CrossSiteRequest()
    origin = request.headers.get("origin")
    if origin not in (None, "null") and origin.lower() not in _own_origins(request, settings):
        raise CrossSiteRequest()


async def json_only(request: Request) -> None:
    """Only ``application/json`` bodies: what a cross-site form or ``fetch`` cannot send."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise JsonRequired()


def presession_cookie_name(settings: Settings) -> str:
    return f"__Host-{PRESESSION_COOKIE}" if settings.cookie_secure else PRESESSION_COOKIE


def issue_form_token(request: Request, settings: Settings, box: SecretBox) -> tuple[str, str]:
    """(the form's token, the cookie value it belongs to); the cookie is reused when valid."""
    nonce = request.cookies.get(presession_cookie_name(settings), "")
    if not 32 <= len(nonce) <= 64 or not nonce.isascii():
        nonce = secrets.token_urlsafe(32)
    return box.sign(PRESESSION_PURPOSE, nonce), nonce


def set_form_cookie(response: Response, settings: Settings, nonce: str) -> None:
    """The pre-session cookie: HttpOnly, SameSite=Strict, for the browser session only."""
    response.set_cookie(
        presession_cookie_name(settings),
        nonce,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="strict",
        path="/",
    )


async def presession_form(
    request: Request,
    settings: SettingsDep,
    box: BoxDep,
    _origin: Annotated[None, Depends(same_origin)],
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> None:
    """A sign-in or registration form from this site: its token matches the visitor's cookie."""
    nonce = request.cookies.get(presession_cookie_name(settings), "")
    valid = nonce and csrf_token.isascii() and box.verify(PRESESSION_PURPOSE, nonce, csrf_token)
    if not valid:
        raise PresessionFormExpired()


SameOrigin = Depends(same_origin)
JsonOnly = Depends(json_only)
PresessionForm = Depends(presession_form)
