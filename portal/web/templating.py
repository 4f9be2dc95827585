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

from portal import i18n, labels
from portal.middleware import PAGE_CSP
from portal.ohif.links import ohif_study_url
from portal.web.script_words import script_words

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def _dicom_date(value: str | None) -> str:
    """A DICOM date (``YYYYMMDD``) as a date people read; anything else as it came."""
    if not value:
        return ""
    try:
        return i18n.format_date(datetime.strptime(value.strip(), "%Y%m%d"))
    except ValueError:
        return value


def build_templates() -> Jinja2Templates:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    # {% trans %} blocks are one line of text whatever their layout (as the extractor reads them).
    environment.policies["ext.i18n.trimmed"] = True
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.plural_form, newstyle=True, pgettext=i18n.pgettext
    )
    environment.filters["date"] = i18n.format_date
    environment.filters["moment"] = i18n.format_moment
    environment.filters["size"] = i18n.format_size
    environment.filters["number"] = i18n.format_number
    environment.filters["money"] = i18n.format_money
    environment.filters["dicom_date"] = _dicom_date
    environment.filters["words"] = labels.word
    environment.filters["language"] = i18n.language_name
    environment.globals["ohif_study_url"] = ohif_study_url
    environment.globals["language_name"] = i18n.language_name
    environment.globals["script_words"] = script_words
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
    """A page: the template with the caller and CSRF token, under the pages' CSP, in the
    visitor's language (``<html lang>`` and ``Content-Language`` say which)."""
    caller = getattr(request.state, "page_caller", None)
    language = page_language(request)
    values: dict[str, Any] = {
        "caller": caller,
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "idle_seconds": request.app.state.settings.session_idle_minutes * 60,
        "lang": language,
        "languages": [(code, i18n.native_name(code)) for code in i18n.interface_languages()],
        "here": request.url.path,
    }
    values.update(context or {})
    with i18n.speaking(language):
        response = TEMPLATES.TemplateResponse(request, name, values, status_code=status_code)
    response.headers["content-security-policy"] = PAGE_CSP
    response.headers["content-language"] = language
    return response


def page_language(request: Request) -> str:
    """The account's language, then the ``lang`` cookie, then ``Accept-Language``."""
    caller = getattr(request.state, "page_caller", None)
    return i18n.choose(
        account=caller.user.language if caller is not None else None,
        cookie=request.cookies.get(i18n.LANGUAGE_COOKIE),
        accept_language=request.headers.get("accept-language"),
    )
