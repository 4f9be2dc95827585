"""Errors on pages: a readable HTML page (or the sign-in page) instead of JSON."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request, status
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from portal.errors import PortalError, describe_validation_errors, http_status
from portal.i18n import N_, gettext

HEADINGS = {
    # Marked here, translated where the page is drawn.
    400: N_("The request could not be completed"),
    401: N_("Please sign in"),
    403: N_("Not allowed"),
    404: N_("Not found"),
    405: N_("Not allowed"),
    409: N_("That cannot be done now"),
    413: N_("Too large"),
    415: N_("Not a supported file"),
    422: N_("Please check what you entered"),
    429: N_("Too many attempts"),
    500: N_("Something went wrong"),
    503: N_("Temporarily unavailable"),
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

    heading = gettext(HEADINGS.get(code, HEADINGS[400]))
    if code == 404 and message == "Not Found":
        message = gettext("There is no page at this address.")
    context = {"heading": heading, "message": message}
    return render(request, "error.html", context, status_code=code)


def readable_validation_error(exc: ValidationError) -> str:
    return describe_validation_errors(exc.errors())
