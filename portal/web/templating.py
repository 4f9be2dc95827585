"""Jinja2 templates (autoescaped) and the one way pages are rendered."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape

from portal.middleware import PAGE_CSP
from portal.ohif.links import ohif_study_url

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def _date(value: datetime | None) -> str:
    """``3 Dec 2026`` — dates people read, in UTC (the portal's one time zone)."""
    return f"{value.day} {value:%b %Y}" if value else "—"


def _moment(value: datetime | None) -> str:
    return f"{value.day} {value:%b %Y, %H:%M} UTC" if value else "—"


def _dicom_date(value: str | None) -> str:
    """A DICOM date (``YYYYMMDD``) as a date people read; anything else as it came."""
    if not value:
        return ""
    try:
        return _date(datetime.strptime(value.strip(), "%Y%m%d"))
    except ValueError:
        return value


def build_templates() -> Jinja2Templates:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["date"] = _date
    environment.filters["moment"] = _moment
    environment.filters["dicom_date"] = _dicom_date
    environment.filters["words"] = lambda value: str(value).replace("_", " ")
    environment.globals["ohif_study_url"] = ohif_study_url
    return Jinja2Templates(env=environment)


TEMPLATES = build_templates()


def page_link(path: str, params: dict[str, object], cursor: str | None) -> str | None:
    """The URL of the next page of a list: the same filters, and the cursor (None: no more)."""
    if cursor is None:
        return None
    kept = {name: str(value) for name, value in params.items() if value not in (None, "")}
    return f"{path}?{urlencode({**kept, 'cursor': cursor})}"


def see_other(target: str) -> Response:
    """After a form: go to ``target`` with GET (post/redirect/get)."""
    return RedirectResponse(target, status_code=303)


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    """A page: the template with the caller and CSRF token, under the pages' CSP."""
    values: dict[str, Any] = {
        "caller": getattr(request.state, "page_caller", None),
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "idle_seconds": request.app.state.settings.session_idle_minutes * 60,
    }
    values.update(context or {})
    response = TEMPLATES.TemplateResponse(request, name, values, status_code=status_code)
    response.headers["content-security-policy"] = PAGE_CSP
    return response
