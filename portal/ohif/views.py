"""The viewer's routes: its page and configuration for a case, and the release's files.

``/ohif/cases/{case_id}/…`` is OHIF's route space for one case: every path there that is not
``app-config.js`` answers the page, and OHIF's router takes it from there (``/viewer?…``,
``/viewer/dicomweb?…``). Any signed-in person may open it; the page holds no patient data, and
the case's DICOMweb service decides what the viewer may read. ``/ohif/dist/{version}/…`` serves
the installed release's files to anyone, as the public npm package they are, cached for a year
(their address changes with the version).
"""

from __future__ import annotations

import mimetypes
import uuid
from pathlib import Path, PurePosixPath
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from portal.deps import AnonymousCtx, BoxDep, SessionDep, SettingsDep, SignedInCaller
from portal.errors import NotFound
from portal.i18n import N_, _, speaking
from portal.ohif.bundle import MANIFEST, Bundle, installed_for
from portal.ohif.shell import OHIF_PAGE_CSP, OHIF_WORKER_CSP, config_script
from portal.ohif.urls import shell_base, static_base
from portal.web.deps import EnrollmentRequired, LoginRequired, enrolling_page_caller
from portal.web.errors import page_status
from portal.web.templating import TEMPLATES, page_language

router = APIRouter(prefix="/ohif", include_in_schema=False)

IMMUTABLE = "public, max-age=31536000, immutable"
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".wasm": "application/wasm",  # streaming compilation needs exactly this type
    ".json": "application/json",
    ".jsonc": "application/json",
    ".map": "application/json",
    ".woff2": "font/woff2",
    ".svg": "image/svg+xml",
    ".ico": "image/vnd.microsoft.icon",
}
NOT_INSTALLED = N_(
    "The image viewer is not installed on this server. The portal's own viewer still shows "
    "every series; an administrator can install this one with “portal ohif install”."
)


def viewer_caller(
    request: Request, session: SessionDep, settings: SettingsDep, box: BoxDep, ctx: AnonymousCtx
) -> SignedInCaller:
    """Any signed-in person. Others sign in and come back to this very view, study included."""
    try:
        caller = enrolling_page_caller(request, session, settings, box, ctx)
    except LoginRequired:
        here = quote(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(here) from None
    if caller.auth_session.enrollment_only:
        raise EnrollmentRequired()
    return caller


ViewerCaller = Annotated[SignedInCaller, Depends(viewer_caller)]


def case_in_path(case_id: str) -> uuid.UUID:
    """The case id of the address, only in its canonical form (it becomes the router base)."""
    try:
        parsed = uuid.UUID(case_id)
    except ValueError:
        raise NotFound() from None
    if str(parsed) != case_id:
        raise NotFound()
    return parsed


CaseInPath = Annotated[uuid.UUID, Depends(case_in_path)]


@router.get("/cases/{case_id}/app-config.js")
def viewer_config(case_id: CaseInPath, caller: ViewerCaller, settings: SettingsDep) -> Response:
    if installed_for(settings) is None:
        raise NotFound(_("The image viewer is not installed."))
    script = config_script(case_id=case_id, version=settings.ohif_version)
    return Response(
        script,
        media_type="text/javascript; charset=utf-8",
        headers={"content-security-policy": OHIF_PAGE_CSP},
    )


@router.get("/cases/{case_id}")
@router.get("/cases/{case_id}/{route:path}")
def viewer_page(
    request: Request, case_id: CaseInPath, caller: ViewerCaller, settings: SettingsDep
) -> Response:
    """OHIF's page for every route of the case's viewer; its router shows the right view."""
    bundle = installed_for(settings)
    if bundle is None:
        return page_status(request, 503, _(NOT_INSTALLED))
    with speaking(page_language(request)) as language:
        page = TEMPLATES.get_template("ohif/index.html").render(
            lang=language,
            base=static_base(bundle.version),
            config_url=f"{shell_base(case_id)}/app-config.js",
            scripts=bundle.scripts,
            stylesheets=bundle.stylesheets,
        )
    return HTMLResponse(page, headers={"content-security-policy": OHIF_PAGE_CSP})


@router.get("/dist/{version}/{path:path}")
def release_file(version: str, path: str, settings: SettingsDep) -> Response:
    """A file of the installed release (scripts, workers, codecs, styles, fonts, images)."""
    bundle = installed_for(settings)
    if bundle is None or version != bundle.version:
        raise NotFound()
    file = _file_of(bundle, path)
    policy = OHIF_WORKER_CSP if file.suffix in {".js", ".mjs"} else OHIF_PAGE_CSP
    return FileResponse(
        file,
        media_type=MEDIA_TYPES.get(file.suffix) or _guess_type(file),
        headers={"content-security-policy": policy, "cache-control": IMMUTABLE},
    )


def _file_of(bundle: Bundle, path: str) -> Path:
    """The release's file at ``path``; nothing hidden, outside it, or the manifest."""
    parts = PurePosixPath(path).parts
    hidden = any(part.startswith(".") for part in parts)
    if not parts or hidden or "\\" in path or "\0" in path or path == MANIFEST:
        raise NotFound()
    file = bundle.directory.joinpath(*parts)
    if not file.is_file() or not file.resolve().is_relative_to(bundle.directory.resolve()):
        raise NotFound()
    return file


def _guess_type(file: Path) -> str:
    guessed, _ = mimetypes.guess_type(file.name)
    return guessed or "application/octet-stream"
