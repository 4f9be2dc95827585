"""Plan what to import from a ZIP archive (a hospital CD, a folder of scans) without unpacking it.

The archive is read in place from a seekable file: ``plan_zip`` checks the central directory
against the limits, refuses unsafe entries one by one, opens a ZIP inside the ZIP one level
deep, and reads any DICOMDIR to report which referenced files are missing. Each planned entry
is then streamed by ``ArchiveEntry.open``, which never lets out more bytes than declared.
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.multival import MultiValue

from portal.intake.dicom import quiet_pydicom
from portal.intake.errors import Rejected

MAX_DICOMDIR = 64 * 1024 * 1024
RATIO_GRACE = 1024 * 1024  # below this size an entry's compression ratio is not judged
MAX_DIRECTORY_BYTES_PER_ENTRY = 1024  # central directory size allowed per permitted entry
_CHUNK = 64 * 1024
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_STORED, _DEFLATED = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED
_ZIP_MAGIC = b"PK\x03\x04"

# What an archive may be read from: an open file, a BytesIO, or a raw reader such as the
# storage layer's decrypting reader.
SeekableFile = BinaryIO | io.RawIOBase | io.BufferedIOBase


@dataclass(frozen=True)
class ArchiveLimits:
    """How much one archive may hold; nested archives count against the same limits."""

    max_entries: int = 20_000
    max_total_uncompressed: int = 8 * 1024**3
    max_entry_size: int = 4 * 1024**3
    max_ratio: float = 200.0  # uncompressed / compressed, per entry and for the whole archive


class _OverLimits(Rejected):
    """The archive as a whole is over its limits: nothing more of it is planned."""

    def __init__(self, reason: str) -> None:
        super().__init__("archive_limits", reason)


class _Budget:
    """Bytes let out by all the readers of one plan, against the archive's total limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.produced = 0

    def take(self, count: int) -> None:
        self.produced += count
        if self.produced > self.limit:
            raise _limits("The files in this archive add up to more than we accept.")


@dataclass(frozen=True)
class _Source:
    """Where an entry's bytes are: the archive (or inner archive) file and its ZIP record."""

    fp: SeekableFile
    info: zipfile.ZipInfo
    budget: _Budget | None


@dataclass(frozen=True)
class ArchiveEntry:
    """A file of the archive to ingest."""

    name: str  # normalised relative POSIX path; inner-archive entries carry its path first
    size: int  # declared uncompressed size
    _source: _Source = field(repr=False, compare=False)

    def open(self) -> BinaryIO:
        """Stream the entry's uncompressed bytes, stopping at the declared size and limits.

        Returns
        -------
        BinaryIO
            A reader that raises ``Rejected("archive_limits")`` if the data holds more than
            declared or the archive's total is exceeded, and ``Rejected("malformed_archive")``
            if it holds less or fails its checksum.
        """
        return _buffered(self._source)


@dataclass(frozen=True)
class RejectedEntry:
    """An archive entry that is not imported, and why."""

    name: str
    error: Rejected


@dataclass(frozen=True)
class ArchivePlan:
    """What to import from an archive and how complete it is against its DICOMDIR."""

    entries: list[ArchiveEntry]
    rejected: list[RejectedEntry]
    dicomdir_present: bool
    referenced: int
    missing: list[str]


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
    planner = _Planner(limits, _Budget(limits.max_total_uncompressed))
    planner.add_archive(_open_zip(fp), fp, prefix="", depth=0)
    planner.check_totals(archive_size)
    return _with_dicomdir(planner.entries, planner.rejected)


# -- the archive as a whole ------------------------------------------------------------------


def _limits(reason: str) -> Rejected:
    return _OverLimits(reason)


def _malformed() -> Rejected:
    return Rejected("malformed_archive", "This ZIP archive is damaged and cannot be opened.")


def _check_directory(fp: SeekableFile, archive_size: int, limits: ArchiveLimits) -> None:
    """Count entries from the end record before ``zipfile`` loads the whole directory."""
    start = max(0, archive_size - (22 + 0xFFFF))
    fp.seek(start)
    end = fp.read(archive_size - start)
    at = end.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(end):
        raise _malformed()
    count, directory_size = struct.unpack_from("<HL", end, at + 10)
    if at >= 20 and end[at - 20 : at - 16] == b"PK\x06\x07":  # ZIP64: the real counts
        (record_at,) = struct.unpack_from("<Q", end, at - 12)
        fp.seek(record_at)
        record = fp.read(56)
        if record[:4] != b"PK\x06\x06" or len(record) < 56:
            raise _malformed()
        count, directory_size = struct.unpack_from("<QQ", record, 32)
    too_big = directory_size > limits.max_entries * MAX_DIRECTORY_BYTES_PER_ENTRY
    if count > limits.max_entries or too_big:
        raise _limits(f"This archive has more than {limits.max_entries:,} files.")


def _open_zip(fp: SeekableFile) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(fp)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise _malformed() from exc


# -- entries ---------------------------------------------------------------------------------


class _Planner:
    """Walks an archive's directory (and one level of inner archives) entry by entry."""

    def __init__(self, limits: ArchiveLimits, budget: _Budget) -> None:
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
            raise _limits(f"This archive has more than {self.limits.max_entries:,} files.")
        _check_overlaps(infos, archive.start_dir)
        files = [info for info in infos if not _is_directory(info)]
        self.declared += sum(info.file_size for info in files)
        if self.declared > self.limits.max_total_uncompressed:
            raise _limits("The files in this archive add up to more than we accept.")
        if depth == 0 and files and all(info.flag_bits & 0x1 for info in files):
            raise Rejected(
                "encrypted_archive",
                "This ZIP archive is password-protected. Please upload it without a password.",
            )
        for info in files:
            name = _safe_name(info.filename)
            try:
                self._add_entry(info, fp, name, prefix=prefix, depth=depth)
            except _OverLimits:
                raise
            except Rejected as refused:
                self.rejected.append(RejectedEntry(prefix + (name or info.filename), refused))

    def _add_entry(
        self, info: zipfile.ZipInfo, fp: SeekableFile, name: str | None, *, prefix: str, depth: int
    ) -> None:
        if name is None:
            raise Rejected("unsafe_path", "This file's path in the archive is unsafe.")
        _check_entry(info, self.limits)
        full_name = prefix + name
        if full_name in self.names:
            raise Rejected("unsafe_path", "This file appears twice in the archive.")
        self.names.add(full_name)
        source = _Source(fp, info, self.budget)
        with _EntryReader(_Source(fp, info, None)) as peek:
            is_zip = peek.read(4) == _ZIP_MAGIC
        if not is_zip:
            self.entries.append(ArchiveEntry(full_name, info.file_size, source))
            return
        if depth > 0:
            raise Rejected(
                "nested_archive", "Archives nested more than one level deep are not accepted."
            )
        inner = _buffered(_Source(fp, info, None))
        self.add_archive(_open_zip(inner), inner, prefix=full_name + "/", depth=depth + 1)

    def check_totals(self, archive_size: int) -> None:
        if self.declared > RATIO_GRACE and self.declared > self.limits.max_ratio * archive_size:
            raise _limits("This archive expands to far more data than it holds (a zip bomb).")


def _is_directory(info: zipfile.ZipInfo) -> bool:
    return info.filename.endswith(("/", "\\")) or stat.S_ISDIR(info.external_attr >> 16)


def _safe_name(raw: str) -> str | None:
    """The entry's path as a relative POSIX path, or None if it could escape its folder."""
    name = raw.replace("\\", "/")
    if name.startswith("/") or any(ord(ch) < 32 or ch == ":" for ch in name):
        return None  # absolute, drive letter ("C:"), NTFS stream, control characters
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def _check_entry(info: zipfile.ZipInfo, limits: ArchiveLimits) -> None:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise Rejected("symlink", "This archive entry is a link to another file, not a file.")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        raise Rejected("unsafe_path", "This archive entry is not a regular file.")
    if info.flag_bits & 0x1:
        raise Rejected("encrypted_archive", "This file in the archive is password-protected.")
    if info.compress_type == _STORED and info.compress_size != info.file_size:
        raise _malformed()
    if info.compress_type not in (_STORED, _DEFLATED):
        raise Rejected(
            "unsupported_compression",
            "This file is compressed in a way we cannot read. Please create the ZIP again "
            "with your computer's standard 'compress' option.",
        )
    if info.file_size > limits.max_entry_size:
        raise Rejected("too_large", "This file in the archive is larger than we accept.")
    ratio_exceeded = info.file_size > limits.max_ratio * max(info.compress_size, 1)
    if info.file_size > RATIO_GRACE and ratio_exceeded:
        raise Rejected(
            "archive_limits", "This file expands to far more data than it holds (a zip bomb)."
        )


def _check_overlaps(infos: list[zipfile.ZipInfo], directory_start: int) -> None:
    """Entries that share compressed data multiply it without limit ("overlapping" bombs)."""
    ordered = sorted(infos, key=lambda info: info.header_offset)
    ends = [info.header_offset + _LOCAL_HEADER.size + info.compress_size for info in ordered]
    starts = [info.header_offset for info in ordered[1:]] + [directory_start]
    if any(end > start for end, start in zip(ends, starts, strict=True)):
        raise _limits("The files in this archive overlap each other (a zip bomb).")


# -- reading an entry ------------------------------------------------------------------------


class _EntryReader(io.RawIOBase):
    """The uncompressed bytes of one entry: never more than declared, checked at the end.

    Seekable, so that an inner archive can be read in place: going back restarts the
    decompression from the entry's start.
    """

    def __init__(self, source: _Source) -> None:
        super().__init__()
        self._fp, self._info, self._budget = source.fp, source.info, source.budget
        self._data_at = self._local_data_offset()
        self._restart()

    def _restart(self) -> None:
        deflated = self._info.compress_type == _DEFLATED
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS) if deflated else None
        self._consumed = 0  # compressed bytes taken from the archive
        self._pending = b""  # compressed bytes taken but not yet inflated
        self._pos = 0  # uncompressed bytes produced
        self._crc = 0
        self._crc_valid = True
        self._checked = False

    def _local_data_offset(self) -> int:
        info = self._info
        self._fp.seek(info.header_offset)
        header = self._fp.read(_LOCAL_HEADER.size)
        if len(header) < _LOCAL_HEADER.size:
            raise _malformed()
        magic, _, flags, method, _, _, _, _, _, name_length, extra_length = _LOCAL_HEADER.unpack(
            header
        )
        raw_name = self._fp.read(name_length)
        encoding = "utf-8" if flags & 0x800 else "cp437"
        if magic != _ZIP_MAGIC or method != info.compress_type:
            raise _malformed()
        if raw_name.decode(encoding, "replace") != info.orig_filename or flags & 0x1:
            raise _malformed()  # a local header that disagrees with the directory
        return int(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._info.file_size}
        target = min(base[whence] + offset, self._info.file_size)
        if target < 0:
            raise ValueError("negative seek position")
        if target < self._pos:
            self._restart()
        if self._inflater is None:  # stored: jump straight there
            self._pos = self._consumed = target
            self._crc_valid = target == 0
        while self._pos < target:
            self._produce(min(target - self._pos, _CHUNK))
        return self._pos

    def readinto(self, buffer: Any, /) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._pos < self._info.file_size:
            data = self._produce(min(len(view) - filled, self._info.file_size - self._pos))
            view[filled : filled + len(data)] = data
            filled += len(data)
        if self._pos == self._info.file_size:
            self._check_end()
        return filled

    def _produce(self, want: int) -> bytes:
        """At most ``want`` more bytes of the entry (at least one)."""
        if self._inflater is None:
            data = self._take(want)
        else:
            data = b""
            while not data:
                if not self._pending and self._consumed < self._info.compress_size:
                    self._pending = self._take(max(512, min(want, _CHUNK)))
                if not self._pending or self._inflater.eof:
                    raise _shorter()
                data = self._inflater.decompress(self._pending, want)
                self._pending = self._inflater.unconsumed_tail
        self._pos += len(data)
        self._crc = zlib.crc32(data, self._crc)
        if self._budget is not None:
            self._budget.take(len(data))
        return data

    def _take(self, count: int) -> bytes:
        """Compressed (or stored) bytes of the entry, from where the last read ended."""
        count = min(count, self._info.compress_size - self._consumed)
        self._fp.seek(self._data_at + self._consumed)
        data = self._fp.read(count) if count > 0 else b""
        if not data:
            raise _shorter()
        self._consumed += len(data)
        return data

    def _check_end(self) -> None:
        """At the declared size: no more data may follow, and the checksum must match."""
        if self._checked:
            return
        if self._inflater is not None:
            while not self._inflater.eof:
                if not self._pending and self._consumed < self._info.compress_size:
                    self._pending = self._take(_CHUNK)
                if not self._pending:
                    raise _shorter()
                if self._inflater.decompress(self._pending, 1):
                    raise Rejected(
                        "archive_limits", "This file holds more data than its archive declares."
                    )
                self._pending = self._inflater.unconsumed_tail
            if self._inflater.unused_data or self._consumed < self._info.compress_size:
                raise _malformed()
        if self._crc_valid and self._crc != self._info.CRC:
            raise _malformed()
        self._checked = True


def _buffered(source: _Source) -> io.BufferedReader:
    return io.BufferedReader(_EntryReader(source), buffer_size=_CHUNK)


def _shorter() -> Rejected:
    return Rejected(
        "malformed_archive", "This file in the archive is damaged: it is shorter than declared."
    )


# -- DICOMDIR completeness -------------------------------------------------------------------


def _with_dicomdir(entries: list[ArchiveEntry], rejected: list[RejectedEntry]) -> ArchivePlan:
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
        "The index (DICOMDIR) of this CD cannot be read; its other files are still imported.",
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
    return _safe_name("/".join(part.strip() for part in parts))
