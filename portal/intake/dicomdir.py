"""Check an archive's files against the DICOMDIR indexes it holds (a hospital CD's contents).

Each DICOMDIR lists the files of its CD by Referenced File ID. ``with_dicomdir`` reads every
DICOMDIR of a planned archive, puts the files they reference first, and reports the ones
that are referenced but not in the archive.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from pydicom import dcmread
from pydicom.multival import MultiValue

from portal.i18n import _
from portal.intake.dicom import quiet_pydicom
from portal.intake.errors import Rejected
from portal.intake.zipentry import ArchiveEntry, RejectedEntry, safe_name

MAX_DICOMDIR = 64 * 1024 * 1024


@dataclass(frozen=True)
class ArchivePlan:
    """What to import from an archive and how complete it is against its DICOMDIR."""

    entries: list[ArchiveEntry]
    rejected: list[RejectedEntry]
    dicomdir_present: bool
    referenced: int
    missing: list[str]


def with_dicomdir(entries: list[ArchiveEntry], rejected: list[RejectedEntry]) -> ArchivePlan:
    """Referenced files first, then the rest; referenced files not in the archive are missing.

    Every DICOMDIR counts (a ZIP may hold several CDs), each relative to its own folder.
    """
    indexes = [entry for entry in entries if entry.name.rpartition("/")[2].upper() == "DICOMDIR"]
    files = [entry for entry in entries if entry.name not in {index.name for index in indexes}]
    references: dict[str, str] = {}  # match key -> path as the DICOMDIR spells it
    readable = 0
    for index in indexes:
        try:
            paths = _dicomdir_references(index)
        except Rejected as refused:
            rejected.append(RejectedEntry(index.name, refused))
            continue
        readable += 1
        folder = index.name.rpartition("/")[0]
        for path in paths:
            full = f"{folder}/{path}" if folder else path
            references.setdefault(_match_key(full), full)
    present = {_match_key(entry.name) for entry in files}
    present |= {_match_key(refused.name) for refused in rejected}  # there, but refused
    referenced = [entry for entry in files if _match_key(entry.name) in references]
    return ArchivePlan(
        entries=referenced + [e for e in files if _match_key(e.name) not in references],
        rejected=rejected,
        dicomdir_present=readable > 0,
        referenced=len(references),
        missing=[path for key, path in references.items() if key not in present],
    )


def _match_key(path: str) -> str:
    """CD file names compare case-insensitively, without ISO 9660 ";1" versions or final dots."""
    return "/".join(part.partition(";")[0].rstrip(".").casefold() for part in path.split("/"))


def _dicomdir_references(index: ArchiveEntry) -> list[str]:
    """The Referenced File IDs of a DICOMDIR, as relative POSIX paths (read in memory)."""
    unreadable = Rejected(
        "malformed_dicom",
        _("The index (DICOMDIR) of this CD cannot be read; its other files are still imported."),
    )
    if index.size > MAX_DICOMDIR:
        raise unreadable
    with index.open() as stream:
        data = stream.read()
    with quiet_pydicom():
        try:
            records = dcmread(io.BytesIO(data)).DirectoryRecordSequence
            ids = [record.ReferencedFileID for record in records if "ReferencedFileID" in record]
            paths = [_file_id_path(value) for value in ids]
        except Exception as exc:  # pydicom raises many types on a damaged index
            raise unreadable from exc
    return [path for path in paths if path is not None]


def _file_id_path(value: Any) -> str | None:
    parts = [str(part) for part in value] if isinstance(value, MultiValue) else [str(value)]
    return safe_name("/".join(part.strip() for part in parts))
