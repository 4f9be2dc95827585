"""A miniature ``@ohif/app`` release, built on the spot: the shape of the real one (an npm
tarball with ``package/dist/``, a root public path, a page with the entry script), none of
its code. Tests install it from a ``file:`` registry, never from the network."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from portal.ohif.install import Release

VERSION = "9.8.7"
ENTRY = "app.bundle.1a2b3c.js"
ROOT_RUNTIME = b'(() => {\n__webpack_require__.p = "/";\n})();\n'
PAGE = (
    '<!doctype html><html><head><script>window.PUBLIC_URL="/"</script>'
    '<script src="/app-config.js"></script>'
    '<script type="module" src="/init-service-worker.js"></script>'
    f'<script defer src="/{ENTRY}"></script>'
    '<link href="/app.bundle.css" rel="stylesheet"></head>'
    '<body><div id="root"></div></body></html>'
).encode()
DIST: dict[str, bytes] = {
    "index.html": PAGE,
    ENTRY: b"// entry\n" + ROOT_RUNTIME,
    "decode.worker.bundle.js": b"// worker\n" + ROOT_RUNTIME + b'importScripts("x");\n',
    "app.bundle.css": b"@font-face{src:url(/f00d.woff2) format('woff2')}a{b:url(//x/y)}",
    "f00d.woff2": b"wOF2 font",
    "c0dec.wasm": b"\0asm\1\0\0\0",
    "assets/favicon.ico": b"icon",
    "app-config.js": b"window.config = {dataSources: ['https://elsewhere.example']};",
    "sw.js": b"self.addEventListener('fetch', () => {});",
    "init-service-worker.js": b"navigator.serviceWorker;",
    "_redirects": b"/* /index.html 200",
    "ort/ort.min.js": b'(() => {\n__webpack_require__.p = "/";\n})();\n',
}


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def tarball(entries: Sequence[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    """A gzip tarball of ``(name, content)`` files and ready-made members (links, …)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                archive.addfile(entry)
                continue
            name, content = entry
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return out.getvalue()


def package(dist: dict[str, bytes] | None = None) -> bytes:
    """The release as npm publishes it: ``package/package.json`` and ``package/dist/…``."""
    files = dist if dist is not None else DIST
    return tarball(
        [("package/package.json", b'{"name": "@ohif/app"}')]
        + [(f"package/dist/{name}", content) for name, content in files.items()]
    )


@dataclass
class Registry:
    """A ``file:`` npm registry holding one tarball per version."""

    root: Path

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def publish(self, data: bytes, version: str = VERSION) -> Release:
        """Put ``data`` where the registry serves ``@ohif/app@version``; pin its hash."""
        path = self.tarball_path(version)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return Release(version=version, integrity=integrity_of(data), tarball_url=path.as_uri())

    def tarball_path(self, version: str = VERSION) -> Path:
        return self.root / "@ohif" / "app" / "-" / f"app-{version}.tgz"


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry")


@pytest.fixture
def release(registry: Registry) -> Release:
    """The miniature release, published and pinned."""
    return registry.publish(package())


def files_under(root: Path) -> set[str]:
    """Every file below ``root``, as relative POSIX paths."""
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}
