"""Unpack the ``package/dist/`` folder of an npm tarball, refusing anything that could escape it.

The tarball has already been checked against its pinned integrity hash, so these rules are a
second wall, not the first: no links or special files anywhere in the archive, no absolute
names, no ``..``, no entry written twice, and bounded size and count. Entries are copied byte
by byte into files this code creates (never ``TarFile.extract``), so the archive's owners,
modes and timestamps are never applied.
"""

from __future__ import annotations

import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from portal.ohif.errors import UnsafeArchive

PACKAGE_DIST = PurePosixPath("package/dist")
MAX_ENTRIES = 20_000
MAX_TOTAL_BYTES = 1024**3
"""Far above a real release (3.13.2 unpacks to 213 MB), far below a full disk."""


@dataclass(frozen=True)
class Unpacked:
    files: int
    total_bytes: int


def extract_dist(tarball: Path, destination: Path) -> Unpacked:
    """Copy the regular files under ``package/dist/`` of ``tarball`` into ``destination``.

    Parameters
    ----------
    tarball
        A gzip-compressed npm package tarball.
    destination
        An empty directory; ``package/dist/a/b.js`` becomes ``destination/a/b.js``.

    Returns
    -------
    Unpacked
        How many files and bytes were written.

    Raises
    ------
    UnsafeArchive
        For a link, device or FIFO anywhere in the archive, an absolute or ``..`` name, an
        entry written twice, or too many or too large entries. ``destination`` may then
        hold part of the archive: the caller throws it away.
    tarfile.TarError
        When the file is not a readable gzip tarball.
    """
    root = destination.resolve()
    files = total = entries = 0
    with tarfile.open(tarball, mode="r:gz") as archive:
        for member in archive:
            entries += 1
            if entries > MAX_ENTRIES:
                raise UnsafeArchive(member.name, f"is past the limit of {MAX_ENTRIES} entries")
            relative = _dist_path(member)
            if relative is None or member.isdir():
                continue
            total += member.size
            if total > MAX_TOTAL_BYTES:
                raise UnsafeArchive(member.name, f"takes the archive past {MAX_TOTAL_BYTES} bytes")
            _copy_member(archive, member, root, relative)
            files += 1
    return Unpacked(files=files, total_bytes=total)


def _dist_path(member: tarfile.TarInfo) -> PurePosixPath | None:
    """The entry's path inside ``dist/``, ``None`` for entries outside it; refuses unsafe ones."""
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchive(member.name, "is a link or a special file")
    if "\\" in member.name or "\0" in member.name:
        raise UnsafeArchive(member.name, "has a backslash or NUL in its name")
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise UnsafeArchive(member.name, "points outside the archive")
    if name == PACKAGE_DIST or not name.is_relative_to(PACKAGE_DIST):
        return None
    return name.relative_to(PACKAGE_DIST)


def _copy_member(
    archive: tarfile.TarFile, member: tarfile.TarInfo, root: Path, relative: PurePosixPath
) -> None:
    target = root.joinpath(*relative.parts)
    if not target.resolve().is_relative_to(root):  # a directory named like a link target
        raise UnsafeArchive(member.name, "resolves outside the destination")
    target.parent.mkdir(parents=True, exist_ok=True)
    source = archive.extractfile(member)
    if source is None:  # pragma: no cover - isfile() members always have content
        raise UnsafeArchive(member.name, "has no content")
    try:
        with source, target.open("xb") as out:
            shutil.copyfileobj(source, out, length=1024 * 1024)
    except FileExistsError:
        raise UnsafeArchive(member.name, "appears twice in the archive") from None
