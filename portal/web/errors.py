"""Errors on pages: a readable HTML page (or the sign-in page) instead of JSON."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request, status
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from portal.errors import PortalError, describe_validation_errors, http_status

HEADINGS = {
    400: "The request could not be completed",
    401: "Please sign in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "That cannot be done now",
    413: "Too large",
    415: "Not a supported file",
    422: "Please check what you entered",
    429: "Too many attempts",
    500: "Something went wrong",
    503: "Temporarily unavailable",
}
API_PREFIXES = ("/api/", "/healthz", "/readyz", "/static/")


def is_page(request: Request) -> bool:
    """A request for a page (not the JSON API, health checks or static files)."""
    return not request.url.path.startswith(API_PREFIXES)


def page_error(request: Request, exc: PortalError) -> Response:
    from portal.web.deps import EnrollmentRequired, LoginRequired

    if isinstance(exc, LoginRequired):
        return RedirectResponse(
            f"/login?next={quote(exc.next_path)}", status_code=status.HTTP_303_SEE_OTHER
        )
    if isinstance(exc, EnrollmentRequired):
        return RedirectResponse("/account/two-step", status_code=status.HTTP_303_SEE_OTHER)
    return page_status(request, http_status(exc), exc.message)


def page_status(request: Request, code: int, message: str) -> Response:
    from portal.web.templating import render

    heading = HEADINGS.get(code, HEADINGS[400])
    if code == 404 and message == "Not Found":
        message = "There is no page at this address."
    context = {"heading": heading, "message": message}
    return render(request, "error.html", context, status_code=code)


def readable_validation_error(exc: ValidationError) -> str:
    return describe_validation_errors(exc.errors())
