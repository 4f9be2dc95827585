"""Plan what to import from a ZIP archive (a hospital CD, a folder of scans) without unpacking it.

The archive is read in place from a seekable file: ``plan_zip`` checks the central directory
against the limits, refuses unsafe entries one by one, opens a ZIP inside the ZIP one level
deep, and reads any DICOMDIR to report which referenced files are missing. Each planned entry
is then streamed by ``ArchiveEntry.open``, which never lets out more bytes than declared.

The entry reader lives in ``zipentry.py`` and the DICOMDIR completeness check in
``dicomdir.py``; their public names are importable from here as before.
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
from dataclasses import dataclass

from portal.i18n import _, ngettext
from portal.intake.dicomdir import MAX_DICOMDIR, ArchivePlan, with_dicomdir
from portal.intake.errors import Rejected
from portal.intake.zipentry import (
    DEFLATED,
    LOCAL_HEADER,
    STORED,
    ZIP_MAGIC,
    ArchiveEntry,
    Budget,
    EntryReader,
    OverLimits,
    RejectedEntry,
    SeekableFile,
    Source,
    buffered,
    malformed,
    over_limits,
    safe_name,
)

__all__ = [
    "MAX_DICOMDIR",
    "MAX_DIRECTORY_BYTES_PER_ENTRY",
    "RATIO_GRACE",
    "ArchiveEntry",
    "ArchiveLimits",
    "ArchivePlan",
    "RejectedEntry",
    "SeekableFile",
    "plan_zip",
]

RATIO_GRACE = 1024 * 1024  # below this size an entry's compression ratio is not judged
MAX_DIRECTORY_BYTES_PER_ENTRY = 1024  # central directory size allowed per permitted entry


@dataclass(frozen=True)
class ArchiveLimits:
    """How much one archive may hold; nested archives count against the same limits."""

    max_entries: int = 20_000
    max_total_uncompressed: int = 8 * 1024**3
    max_entry_size: int = 4 * 1024**3
    max_ratio: float = 200.0  # uncompressed / compressed, per entry and for the whole archive


def plan_zip(fp: SeekableFile, limits: ArchiveLimits) -> ArchivePlan:
    """Decide which entries of a ZIP archive to import.

    Parameters
    ----------
    fp : BinaryIO or io.RawIOBase
        The archive, seekable. It is read in place and must stay open while entries are read.
    limits : ArchiveLimits
        Entry count, sizes and compression ratio allowed.

    Returns
    -------
    ArchivePlan
        Entries to import (files a DICOMDIR references first, then the others, each group in
        archive order), entries refused with their reason, and DICOMDIR completeness.

    Raises
    ------
    Rejected
        ``malformed_archive`` when this is not a readable ZIP, ``encrypted_archive`` when
        every file in it is password-protected, ``archive_limits`` when it has too many
        entries, declares too much data, compresses implausibly well or overlaps entries.
    """
    archive_size = fp.seek(0, io.SEEK_END)
    _check_directory(fp, archive_size, limits)
    planner = _Planner(limits, Budget(limits.max_total_uncompressed))
    planner.add_archive(_open_zip(fp), fp, prefix="", depth=0)
    planner.check_totals(archive_size)
    return with_dicomdir(planner.entries, planner.rejected)


# -- the archive as a whole ------------------------------------------------------------------


def _check_directory(fp: SeekableFile, archive_size: int, limits: ArchiveLimits) -> None:
    """Count entries from the end record before ``zipfile`` loads the whole directory."""
    start = max(0, archive_size - (22 + 0xFFFF))
    fp.seek(start)
    end = fp.read(archive_size - start)
    at = end.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(end):
        raise malformed()
    count, directory_size = struct.unpack_from("<HL", end, at + 10)
    if at >= 20 and end[at - 20 : at - 16] == b"PK\x06\x07":  # ZIP64: the real counts
        (record_at,) = struct.unpack_from("<Q", end, at - 12)
        if record_at > archive_size - 56:  # a record said to lie past the end of the file
            raise malformed()
        fp.seek(record_at)
        record = fp.read(56)
        if record[:4] != b"PK\x06\x06" or len(record) < 56:
            raise malformed()
        count, directory_size = struct.unpack_from("<QQ", record, 32)
    too_big = directory_size > limits.max_entries * MAX_DIRECTORY_BYTES_PER_ENTRY
    if count > limits.max_entries or too_big:
        raise over_limits(_too_many_files(limits.max_entries))


def _too_many_files(limit: int) -> str:
    return ngettext(
        "This archive has more than %(num)s file.",
        "This archive has more than %(num)s files.",
        limit,
    )


def _open_zip(fp: SeekableFile) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(fp)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        ValueError,
        EOFError,
        NotImplementedError,  # "zip file version" newer than zipfile reads
    ) as exc:
        raise malformed() from exc


# -- entries ---------------------------------------------------------------------------------


class _Planner:
    """Walks an archive's directory (and one level of inner archives) entry by entry."""

    def __init__(self, limits: ArchiveLimits, budget: Budget) -> None:
        self.limits = limits
        self.budget = budget
        self.entries: list[ArchiveEntry] = []
        self.rejected: list[RejectedEntry] = []
        self.count = 0
        self.declared = 0
        self.names: set[str] = set()

    def add_archive(
        self, archive: zipfile.ZipFile, fp: SeekableFile, *, prefix: str, depth: int
    ) -> None:
        infos = archive.infolist()
        self.count += len(infos)
        if self.count > self.limits.max_entries:
            raise over_limits(_too_many_files(self.limits.max_entries))
        _check_overlaps(infos, archive.start_dir)
        files = [info for info in infos if not _is_directory(info)]
        self.declared += sum(info.file_size for info in files)
        if self.declared > self.limits.max_total_uncompressed:
            raise over_limits(_("The files in this archive add up to more than we accept."))
        if depth == 0 and files and all(info.flag_bits & 0x1 for info in files):
            raise Rejected(
                "encrypted_archive",
                _("This ZIP archive is password-protected. Please upload it without a password."),
            )
        for info in files:
            name = safe_name(info.filename)
            try:
                self._add_entry(info, fp, name, prefix=prefix, depth=depth)
            except OverLimits:
                raise
            except Rejected as refused:
                self.rejected.append(RejectedEntry(prefix + (name or info.filename), refused))

    def _add_entry(
        self, info: zipfile.ZipInfo, fp: SeekableFile, name: str | None, *, prefix: str, depth: int
    ) -> None:
        if name is None:
            raise Rejected("unsafe_path", _("This file's path in the archive is unsafe."))
        _check_entry(info, self.limits)
        full_name = prefix + name
        if full_name in self.names:
            raise Rejected("unsafe_path", _("This file appears twice in the archive."))
        self.names.add(full_name)
        source = Source(fp, info, self.budget)
        with EntryReader(Source(fp, info, None)) as peek:
            is_zip = peek.read(4) == ZIP_MAGIC
        if not is_zip:
            self.entries.append(ArchiveEntry(full_name, info.file_size, source))
            return
        if depth > 0:
            raise Rejected(
                "nested_archive", _("Archives nested more than one level deep are not accepted.")
            )
        inner = buffered(Source(fp, info, None))
        self.add_archive(_open_zip(inner), inner, prefix=full_name + "/", depth=depth + 1)

    def check_totals(self, archive_size: int) -> None:
        if self.declared > RATIO_GRACE and self.declared > self.limits.max_ratio * archive_size:
            raise over_limits(
                _("This archive expands to far more data than it holds (a zip bomb).")
            )


def _is_directory(info: zipfile.ZipInfo) -> bool:
    return info.filename.endswith(("/", "\\")) or stat.S_ISDIR(info.external_attr >> 16)


def _check_entry(info: zipfile.ZipInfo, limits: ArchiveLimits) -> None:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise Rejected("symlink", _("This archive entry is a link to another file, not a file."))
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        raise Rejected("unsafe_path", _("This archive entry is not a regular file."))
    if info.flag_bits & 0x1:
        raise Rejected("encrypted_archive", _("This file in the archive is password-protected."))
    if info.compress_type == STORED and info.compress_size != info.file_size:
        raise malformed()
    if info.compress_type not in (STORED, DEFLATED):
        raise Rejected(
            "unsupported_compression",
            _(
                "This file is compressed in a way we cannot read. Please create the ZIP again "
                "with your computer's standard 'compress' option."
            ),
        )
    if info.file_size > limits.max_entry_size:
        raise Rejected("too_large", _("This file in the archive is larger than we accept."))
    ratio_exceeded = info.file_size > limits.max_ratio * max(info.compress_size, 1)
    if info.file_size > RATIO_GRACE and ratio_exceeded:
        raise Rejected(
            "archive_limits", _("This file expands to far more data than it holds (a zip bomb).")
        )


def _check_overlaps(infos: list[zipfile.ZipInfo], directory_start: int) -> None:
    """Entries that share compressed data multiply it without limit ("overlapping" bombs)."""
    ordered = sorted(infos, key=lambda info: info.header_offset)
    if not ordered:  # nothing but folders: nothing to overlap
        return
    ends = [info.header_offset + LOCAL_HEADER.size + info.compress_size for info in ordered]
    starts = [info.header_offset for info in ordered[1:]] + [directory_start]
    if any(end > start for end, start in zip(ends, starts, strict=True)):
        raise over_limits(_("The files in this archive overlap each other (a zip bomb)."))
