"""Point an unpacked OHIF ``dist/`` at the address the portal serves it from.

The npm release is built for the root of a site: its webpack runtimes (the app's and each web
worker's) say ``__webpack_require__.p = "/"`` and its stylesheet loads fonts from ``url(/…)``.
The portal serves the release under ``/ohif/dist/{version}/``, so both are rewritten to that
prefix here, once, at install time (the same result as rebuilding OHIF with ``PUBLIC_URL`` set,
without Node). The page (``index.html``) and configuration (``app-config.js``) of the release
are not used: the portal writes its own for each case, so they and the files that belong to
other deployments (a service worker, Netlify and ``serve`` files, a Google Cloud demo
configuration) are deleted, as is a runtime for a tool that cannot work here.
"""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

from portal.ohif.bundle import MANIFEST, Bundle
from portal.ohif.errors import UnexpectedBundle
from portal.ohif.urls import static_base

ROOT_PUBLIC_PATH = b'__webpack_require__.p = "/";'
ROOT_CSS_URL = re.compile(rb"""url\((['"]?)/(?!/)""")
NOT_SERVED = (
    "index.html",  # replaced by the portal's page for each case
    "app-config.js",  # replaced by the portal's configuration for each case
    "google.js",  # a demo configuration for Google Cloud Healthcare
    "sw.js",  # a service worker; the portal registers none
    "init-service-worker.js",
    "silent-refresh.html",  # OpenID Connect; the portal signs people in itself
    "serve.json",
    "_headers",
    "_redirects",
)
NOT_SERVED_FOLDERS = (
    # onnxruntime-web (136 MB) for OHIF's AI segmentation, whose models it would fetch from
    # huggingface.co: a host the viewer's CSP does not reach, with the tool off.
    "ort",
)
SKIPPED_SCRIPTS = {"/app-config.js", "/init-service-worker.js"}


def relocate(directory: Path, *, version: str, integrity: str) -> Bundle:
    """Rewrite the release in ``directory`` for its public path and write its manifest.

    Parameters
    ----------
    directory
        An unpacked ``package/dist/`` of ``@ohif/app``.
    version, integrity
        The release, recorded in the manifest.

    Returns
    -------
    Bundle
        The release, ready to serve once ``directory`` is moved into place.

    Raises
    ------
    UnexpectedBundle
        When ``index.html`` loads something from elsewhere or is missing, or the entry script
        has no root public path to rewrite: a new OHIF release built differently needs a look
        (docs/ohif.md) before it is served.
    """
    base = static_base(version)
    scripts, stylesheets = _entry_points(directory)
    for name in NOT_SERVED:
        (directory / name).unlink(missing_ok=True)
    for folder in NOT_SERVED_FOLDERS:
        shutil.rmtree(directory / folder, ignore_errors=True)
    rewritten = _rewrite_public_paths(directory, base.encode())
    if not scripts or not set(scripts) <= rewritten:
        raise UnexpectedBundle(
            f"the entry scripts {scripts} do not set webpack's public path to '/'"
        )
    for stylesheet in directory.rglob("*.css"):
        content = stylesheet.read_bytes()
        stylesheet.write_bytes(ROOT_CSS_URL.sub(rb"url(\1" + base.encode(), content))
    bundle = Bundle(
        version=version,
        integrity=integrity,
        directory=directory,
        scripts=tuple(scripts),
        stylesheets=tuple(stylesheets),
    )
    (directory / MANIFEST).write_text(bundle.manifest(), encoding="utf-8")
    return bundle


def _rewrite_public_paths(directory: Path, base: bytes) -> set[str]:
    """Set every webpack runtime's public path to ``base``; return the files changed."""
    changed = set()
    for script in directory.rglob("*.js"):
        content = script.read_bytes()
        if ROOT_PUBLIC_PATH not in content:
            continue
        script.write_bytes(
            content.replace(ROOT_PUBLIC_PATH, b'__webpack_require__.p = "' + base + b'";')
        )
        changed.add(script.relative_to(directory).as_posix())
    return changed


class _EntryPoints(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("src"):
            self.scripts.append(str(values["src"]))
        elif tag == "link" and values.get("rel") == "stylesheet" and values.get("href"):
            self.stylesheets.append(str(values["href"]))


def _entry_points(directory: Path) -> tuple[list[str], list[str]]:
    """The scripts and stylesheets the release's own page loads, as paths in ``directory``."""
    try:
        page = (directory / "index.html").read_text(encoding="utf-8")
    except OSError as exc:
        raise UnexpectedBundle("the release has no index.html") from exc
    parser = _EntryPoints()
    parser.feed(page)
    scripts = [src for src in parser.scripts if src not in SKIPPED_SCRIPTS]
    return _local(directory, scripts), _local(directory, parser.stylesheets)


def _local(directory: Path, urls: list[str]) -> list[str]:
    names = []
    for url in urls:
        name = url.removeprefix("/")
        outside = not url.startswith("/") or url.startswith("//") or ".." in name.split("/")
        if outside or not (directory / name).is_file():
            raise UnexpectedBundle(f"index.html loads {url!r}, which is not a file of the release")
        names.append(name)
    return names
