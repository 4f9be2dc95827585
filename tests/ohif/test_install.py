"""``portal ohif install``: the pinned tarball is verified before a byte is unpacked, unsafe
entries are refused, the release is relocated under ``/ohif/dist/{version}/``, and installing
again changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from portal.ohif.bundle import MANIFEST, installed
from portal.ohif.errors import DownloadFailed, IntegrityMismatch, UnexpectedBundle, UnsafeArchive
from portal.ohif.install import Release, install, release_for
from portal.settings import Settings
from tests.ohif.conftest import DIST, ENTRY, VERSION, Registry, files_under, package, tarball


def quiet(line: str) -> None:
    pass


def test_installs_the_release_relocated_under_its_public_path(tmp_path: Path, release: Release):
    root = tmp_path / "ohif"

    result = install(root=root, release=release, say=quiet)

    assert result.downloaded
    folder = root / VERSION
    assert result.bundle.directory == folder
    assert result.bundle.scripts == (ENTRY,) and result.bundle.stylesheets == ("app.bundle.css",)
    public_path = f'__webpack_require__.p = "/ohif/dist/{VERSION}/";'.encode()
    for script in (ENTRY, "decode.worker.bundle.js"):
        content = (folder / script).read_bytes()
        assert public_path in content and b'__webpack_require__.p = "/"' not in content
    css = (folder / "app.bundle.css").read_bytes()
    assert f"url(/ohif/dist/{VERSION}/f00d.woff2)".encode() in css
    assert b"url(//x/y)" in css, "a protocol-relative URL is not a root path"
    assert (folder / "c0dec.wasm").read_bytes() == DIST["c0dec.wasm"]
    # The release's own page, configuration, service worker and host files are not kept.
    assert files_under(folder) == {
        ENTRY,
        "decode.worker.bundle.js",
        "app.bundle.css",
        "f00d.woff2",
        "c0dec.wasm",
        "assets/favicon.ico",
        MANIFEST,
    }
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["version"] == VERSION and manifest["integrity"] == release.integrity
    assert files_under(root) == {f"{VERSION}/{name}" for name in files_under(folder)} | {
        ".install.lock"
    }, "no scratch files are left behind"


def test_installing_again_changes_nothing_and_downloads_nothing(
    tmp_path: Path, registry: Registry, release: Release
):
    root = tmp_path / "ohif"
    install(root=root, release=release, say=quiet)
    before = {path: path.stat().st_mtime_ns for path in (root / VERSION).rglob("*")}
    registry.tarball_path().unlink()  # a second download would fail

    again = install(root=root, release=release, say=quiet)

    assert not again.downloaded and again.bundle.directory == root / VERSION
    assert {path: path.stat().st_mtime_ns for path in (root / VERSION).rglob("*")} == before


def test_a_tampered_tarball_is_refused_and_nothing_is_installed(
    tmp_path: Path, registry: Registry, release: Release
):
    tampered = dict(DIST, **{ENTRY: DIST[ENTRY] + b"fetch('https://elsewhere.example');"})
    registry.tarball_path().write_bytes(package(tampered))
    root = tmp_path / "ohif"

    with pytest.raises(IntegrityMismatch, match="pinned"):
        install(root=root, release=release, say=quiet)

    assert installed(root=root, version=VERSION, integrity=release.integrity) is None
    assert files_under(root) == {".install.lock"}


def test_a_different_pinned_hash_is_not_the_installed_release(
    tmp_path: Path, registry: Registry, release: Release
):
    root = tmp_path / "ohif"
    install(root=root, release=release, say=quiet)
    other = registry.publish(package(dict(DIST, **{"f00d.woff2": b"another font"})))

    result = install(root=root, release=other, say=quiet)

    assert result.downloaded
    assert installed(root=root, version=VERSION, integrity=release.integrity) is None
    assert (root / VERSION / "f00d.woff2").read_bytes() == b"another font"


def test_an_incomplete_folder_in_the_way_is_replaced(tmp_path: Path, release: Release):
    root = tmp_path / "ohif"
    (root / VERSION).mkdir(parents=True)
    (root / VERSION / "half-written.js").write_bytes(b"")

    install(root=root, release=release, say=quiet)

    assert not (root / VERSION / "half-written.js").exists()
    assert installed(root=root, version=VERSION, integrity=release.integrity) is not None


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, target
    return member


@pytest.mark.parametrize(
    "unsafe",
    [
        ("package/dist/../../escaped.js", b"x"),
        ("/tmp/absolute.js", b"x"),
        ("package/dist/assets/..\\..\\escaped.js", b"x"),
        link("package/dist/passwd", "/etc/passwd"),
        link("package/dist/assets", "/tmp"),
        link("package/README.md", "../../outside"),
        link("package/dist/hard", "/etc/passwd", tarfile.LNKTYPE),
        ("package/dist/" + ENTRY, b"a second copy of the entry"),
    ],
    ids=[
        "dotdot",
        "absolute",
        "backslash",
        "symlink",
        "dir-symlink",
        "link-outside-dist",
        "hardlink",
        "duplicate",
    ],
)
def test_unsafe_entries_refuse_the_whole_archive(
    tmp_path: Path, registry: Registry, unsafe: tarfile.TarInfo | tuple[str, bytes]
):
    entries: list[tarfile.TarInfo | tuple[str, bytes]] = [
        (f"package/dist/{name}", content) for name, content in DIST.items()
    ]
    entries.insert(2, unsafe)
    release = registry.publish(tarball(entries))  # pinned to itself: the hash is not the guard
    root = tmp_path / "ohif"

    with pytest.raises(UnsafeArchive):
        install(root=root, release=release, say=quiet)

    assert files_under(root) == {".install.lock"}
    assert not list(tmp_path.rglob("escaped.js")) and not (tmp_path / "absolute.js").exists()


def test_a_release_without_a_root_public_path_is_not_served(tmp_path: Path, registry: Registry):
    release = registry.publish(package(dict(DIST, **{ENTRY: b"// built for another path\n"})))
    root = tmp_path / "ohif"

    with pytest.raises(UnexpectedBundle, match="public path"):
        install(root=root, release=release, say=quiet)
    assert files_under(root) == {".install.lock"}


@pytest.mark.parametrize("url", ["ftp://registry.example/app.tgz", "file:///no/such/app.tgz"])
def test_downloads_only_over_http_or_from_files_that_exist(
    tmp_path: Path, release: Release, url: str
):
    with pytest.raises(DownloadFailed):
        install(root=tmp_path / "ohif", release=replace(release, tarball_url=url), say=quiet)


def test_the_release_is_fetched_from_the_registry_path_npm_uses():
    settings = Settings(ohif_registry_url="https://registry.npmjs.org/")
    assert release_for(settings) == Release(
        version=settings.ohif_version,
        integrity=settings.ohif_integrity,
        tarball_url=f"https://registry.npmjs.org/@ohif/app/-/app-{settings.ohif_version}.tgz",
    )


def run_cli(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    return subprocess.run(
        [sys.executable, "-m", "portal.cli", "ohif", "install"],
        cwd=cwd,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_command_installs_into_the_data_dir_and_fails_cleanly(
    tmp_path: Path, registry: Registry, release: Release
):
    env = {
        "PORTAL_OHIF_REGISTRY_URL": registry.url,
        "PORTAL_OHIF_VERSION": VERSION,
        "PORTAL_OHIF_INTEGRITY": release.integrity,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    done = run_cli(tmp_path, **env)
    assert done.returncode == 0, done.stderr
    assert f"OHIF {VERSION} installed in var/ohif/{VERSION}" in done.stdout
    assert (tmp_path / "var" / "ohif" / VERSION / MANIFEST).is_file()
    assert "already installed" in run_cli(tmp_path, **env).stdout

    registry.publish(package(), version="9.8.8")
    wrong = "sha512-" + "A" * 86 + "=="
    failed = run_cli(
        tmp_path, **{**env, "PORTAL_OHIF_VERSION": "9.8.8", "PORTAL_OHIF_INTEGRITY": wrong}
    )
    assert failed.returncode == 1
    assert "the OHIF viewer is not installed" in failed.stderr and "pinned" in failed.stderr
    assert not (tmp_path / "var" / "ohif" / "9.8.8").exists()
