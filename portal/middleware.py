"""ASGI middleware: request id and access log, security headers, request size limit.

Written as plain ASGI (not ``BaseHTTPMiddleware``) so streamed uploads and downloads pass
through without buffering.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import MutableMapping
from typing import Any

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.i18n import LANGUAGE_COOKIE, choose, format_size, gettext, language_var
from portal.observability import new_request_id, request_id_var

log = logging.getLogger("portal.access")

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "object-src 'none'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'"
)
UNLISTED_PREFIXES = ("/shared/",)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _language(scope: Scope) -> str:
    """The request's language before anyone signs in: the ``lang`` cookie, then the browser's
    ``Accept-Language`` (a signed-in page then puts the account's setting first)."""
    cookie = _header(scope, b"cookie")
    chosen = cookie_parser(cookie).get(LANGUAGE_COOKIE) if cookie else None
    return choose(cookie=chosen, accept_language=_header(scope, b"accept-language"))


class RequestContextMiddleware:
    """Give every request an id (echoed in ``X-Request-ID``), the language it is answered in,
    and log one access line for it.

    The access line names the route *template* (``/api/cases/{case_id}``), never the raw path
    or query string, and no client address: those belong to the audit trail.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id(_header(scope, b"x-request-id"))
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        language_token = language_var.set(_language(scope))
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": getattr(route, "path", "(unmatched)"),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            request_id_var.reset(token)
            language_var.reset(language_token)


class SecurityHeadersMiddleware:
    """Headers on every response; ``no-store`` unless a response chose its own caching."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = message.setdefault("headers", [])
                present = {key.lower() for key, _ in headers}
                defaults = {
                    b"x-content-type-options": b"nosniff",
                    b"x-frame-options": b"DENY",
                    b"referrer-policy": b"no-referrer",
                    b"cross-origin-opener-policy": b"same-origin",
                    b"cross-origin-resource-policy": b"same-origin",
                    b"permissions-policy": b"camera=(), microphone=(), geolocation=()",
                    b"content-security-policy": API_CSP.encode(),
                    b"cache-control": b"no-store",
                }
                if self.hsts:
                    defaults[b"strict-transport-security"] = b"max-age=63072000; includeSubDomains"
                if scope.get("path", "").startswith(UNLISTED_PREFIXES):
                    # A share link's pages, its errors too: never indexed, whoever finds one.
                    defaults[b"x-robots-tag"] = b"noindex, nofollow"
                for key, value in defaults.items():
                    if key not in present:
                        headers.append((key, value))
                if b"cache-control" not in present:
                    headers.append((b"pragma", b"no-cache"))
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodySizeLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413, except on the streaming upload routes.

    Checks the declared ``Content-Length`` first and counts streamed bytes as they arrive, so a
    client that lies about (or omits) the length is still cut off.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, exempt: re.Pattern[str]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await self._reject(send)

    def _exempt(self, scope: MutableMapping[str, Any]) -> bool:
        return self.exempt.search(scope.get("path", "")) is not None

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            {
                "detail": gettext(
                    "The request is larger than the %(limit)s allowed here.",
                    limit=format_size(self.max_bytes),
                )
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass
