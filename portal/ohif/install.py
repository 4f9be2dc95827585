"""Install the pinned OHIF release: download, verify, unpack, relocate, move into place.

Only Python's standard library is used, so ``make run`` needs neither Node nor npm. The
tarball must hash to the registry's ``dist.integrity`` pinned in the settings before a byte of
it is unpacked. Everything happens in a scratch folder beside the installed releases and the
finished release is moved into ``{root}/{version}`` with one rename: a reader sees the old state
or the new one, never half of one. Installing what is already installed does nothing.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import http.client
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from portal.ohif.archive import extract_dist
from portal.ohif.bundle import Bundle, installed
from portal.ohif.errors import DownloadFailed, IntegrityMismatch, OhifInstallError
from portal.ohif.relocate import relocate
from portal.settings import Settings

PACKAGE = "@ohif/app"
ALLOWED_SCHEMES = frozenset({"https", "http", "file"})
"""``http`` and ``file`` serve mirrors and tests; the integrity hash protects every scheme."""
MAX_TARBALL_BYTES = 256 * 1024**2
DOWNLOAD_TIMEOUT_SECONDS = 60
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Release:
    """One published ``@ohif/app`` tarball and the hash it must have."""

    version: str
    integrity: str
    """``sha512-`` and the base64 digest, exactly as the registry's ``dist.integrity``."""
    tarball_url: str


@dataclass(frozen=True)
class Installed:
    bundle: Bundle
    downloaded: bool
    """``False`` when the release was already installed and nothing was fetched."""


def release_for(settings: Settings) -> Release:
    """The pinned release, fetched from the configured registry."""
    registry = settings.ohif_registry_url.rstrip("/")
    name = PACKAGE.split("/")[-1]
    return Release(
        version=settings.ohif_version,
        integrity=settings.ohif_integrity,
        tarball_url=f"{registry}/{PACKAGE}/-/{name}-{settings.ohif_version}.tgz",
    )


def install(*, root: Path, release: Release, say: Callable[[str], None] = print) -> Installed:
    """Make ``release`` the installed viewer under ``root`` unless it already is.

    Parameters
    ----------
    root
        The folder of installed releases (created if missing).
    release
        What to install; its tarball is downloaded only when needed.
    say
        Receives one line for each step that takes a while.

    Returns
    -------
    Installed
        The installed release, and whether it was downloaded now.

    Raises
    ------
    OhifInstallError
        The download failed, the tarball did not match its integrity hash, held an unsafe
        entry, or is not an OHIF build the portal can serve. Nothing was changed.
    """
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root / ".install.lock"):
        current = installed(root=root, version=release.version, integrity=release.integrity)
        if current is not None:
            return Installed(bundle=current, downloaded=False)
        with tempfile.TemporaryDirectory(dir=root, prefix=".install-") as scratch:
            work = Path(scratch)
            say(f"Downloading {PACKAGE}@{release.version} from {release.tarball_url}")
            download(release.tarball_url, work / "package.tgz", integrity=release.integrity)
            staging = work / "dist"
            staging.mkdir()
            try:
                unpacked = extract_dist(work / "package.tgz", staging)
            except tarfile.TarError as exc:
                raise OhifInstallError(f"the release is not a readable tarball: {exc}") from exc
            say(f"Unpacked {unpacked.files} files ({unpacked.total_bytes // 1024**2} MB)")
            bundle = relocate(staging, version=release.version, integrity=release.integrity)
            final = root / release.version
            _move_into_place(staging, final, trash=work / "previous")
    return Installed(bundle=replace(bundle, directory=final), downloaded=True)


def download(url: str, target: Path, *, integrity: str) -> None:
    """Stream ``url`` into ``target`` (a new file) and check it against ``integrity``.

    Raises
    ------
    DownloadFailed
        For a refused scheme, a network or HTTP error, or a body over the size limit.
    IntegrityMismatch
        When the bytes do not hash to ``integrity``.
    """
    if urlsplit(url).scheme not in ALLOWED_SCHEMES:
        raise DownloadFailed(f"refusing to download from {url!r}: not an http(s) or file URL")
    digest = hashlib.sha512()
    size = 0
    try:
        # The scheme is checked above; urlopen follows redirects and honours HTTPS_PROXY.
        with (
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response,  # noqa: S310
            target.open("xb") as out,
        ):
            while chunk := response.read(CHUNK_BYTES):
                size += len(chunk)
                if size > MAX_TARBALL_BYTES:
                    raise DownloadFailed(f"{url} is larger than {MAX_TARBALL_BYTES} bytes")
                digest.update(chunk)
                out.write(chunk)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise DownloadFailed(f"could not download {url}: {exc}") from exc
    actual = "sha512-" + base64.b64encode(digest.digest()).decode("ascii")
    if not hmac.compare_digest(actual, integrity):
        raise IntegrityMismatch(
            f"{url} hashes to {actual}, not to the pinned {integrity}; nothing was installed"
        )


def _move_into_place(staging: Path, final: Path, *, trash: Path) -> None:
    """Rename ``staging`` to ``final``; an incomplete or outdated ``final`` goes to ``trash``."""
    if final.exists():
        final.rename(trash)  # the scratch folder, deleted with it
    staging.rename(final)


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One installer at a time per folder (``make run`` and ``make test`` may start together)."""
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def install_command(settings: Settings) -> int:
    """``portal ohif install``: exit 0 once the pinned release is installed, 1 when it is not."""
    release = release_for(settings)
    try:
        result = install(root=settings.ohif_root, release=release)
    except OhifInstallError as exc:
        print(f"portal: the OHIF viewer is not installed: {exc}", file=sys.stderr)
        return 1
    verb = "installed in" if result.downloaded else "is already installed in"
    print(f"OHIF {release.version} {verb} {result.bundle.directory}")
    return 0
