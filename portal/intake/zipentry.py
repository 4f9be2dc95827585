"""Stream one entry of a ZIP archive in place, never letting out more bytes than declared.

``ArchiveEntry.open`` reads the entry's local header, then inflates (or copies) its data
straight from the archive file, stopping at the declared size, checking the CRC at the end and
counting every byte against the whole archive's budget. ``archive.py`` plans which entries to
import; this module is how each one is read.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from portal.i18n import _
from portal.intake.errors import Rejected

CHUNK = 64 * 1024
LOCAL_HEADER = struct.Struct("<4s5H3L2H")
STORED, DEFLATED = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED
ZIP_MAGIC = b"PK\x03\x04"

# What an archive may be read from: an open file, a BytesIO, or a raw reader such as the
# storage layer's decrypting reader.
SeekableFile = BinaryIO | io.RawIOBase | io.BufferedIOBase


class OverLimits(Rejected):
    """The archive as a whole is over its limits: nothing more of it is planned."""

    def __init__(self, reason: str) -> None:
        super().__init__("archive_limits", reason)


def over_limits(reason: str) -> Rejected:
    return OverLimits(reason)


def malformed() -> Rejected:
    return Rejected("malformed_archive", _("This ZIP archive is damaged and cannot be opened."))


class Budget:
    """Bytes let out by all the readers of one plan, against the archive's total limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.produced = 0

    def take(self, count: int) -> None:
        self.produced += count
        if self.produced > self.limit:
            raise over_limits(_("The files in this archive add up to more than we accept."))


@dataclass(frozen=True)
class Source:
    """Where an entry's bytes are: the archive (or inner archive) file and its ZIP record."""

    fp: SeekableFile
    info: zipfile.ZipInfo
    budget: Budget | None


@dataclass(frozen=True)
class ArchiveEntry:
    """A file of the archive to ingest."""

    name: str  # normalised relative POSIX path; inner-archive entries carry its path first
    size: int  # declared uncompressed size
    _source: Source = field(repr=False, compare=False)

    def open(self) -> BinaryIO:
        """Stream the entry's uncompressed bytes, stopping at the declared size and limits.

        Returns
        -------
        BinaryIO
            A reader that raises ``Rejected("archive_limits")`` if the data holds more than
            declared or the archive's total is exceeded, and ``Rejected("malformed_archive")``
            if it holds less or fails its checksum.
        """
        return buffered(self._source)


@dataclass(frozen=True)
class RejectedEntry:
    """An archive entry that is not imported, and why."""

    name: str
    error: Rejected


def safe_name(raw: str) -> str | None:
    """The entry's path as a relative POSIX path, or None if it could escape its folder."""
    name = raw.replace("\\", "/")
    if name.startswith("/") or any(ord(ch) < 32 or ch == ":" for ch in name):
        return None  # absolute, drive letter ("C:"), NTFS stream, control characters
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


# -- reading an entry ------------------------------------------------------------------------


class EntryReader(io.RawIOBase):
    """The uncompressed bytes of one entry: never more than declared, checked at the end.

    Seekable, so that an inner archive can be read in place: going back restarts the
    decompression from the entry's start.
    """

    def __init__(self, source: Source) -> None:
        super().__init__()
        self._fp, self._info, self._budget = source.fp, source.info, source.budget
        self._data_at = self._local_data_offset()
        self._restart()

    def _restart(self) -> None:
        deflated = self._info.compress_type == DEFLATED
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS) if deflated else None
        self._consumed = 0  # compressed bytes taken from the archive
        self._pending = b""  # compressed bytes taken but not yet inflated
        self._pos = 0  # uncompressed bytes produced
        self._crc = 0
        self._crc_valid = True
        self._checked = False

    def _local_data_offset(self) -> int:
        info = self._info
        if info.header_offset < 0:  # zipfile subtracts a prefix the directory claims
            raise malformed()
        self._fp.seek(info.header_offset)
        header = self._fp.read(LOCAL_HEADER.size)
        if len(header) < LOCAL_HEADER.size:
            raise malformed()
        magic, _, flags, method, _, _, _, _, _, name_length, extra_length = LOCAL_HEADER.unpack(
            header
        )
        raw_name = self._fp.read(name_length)
        encoding = "utf-8" if flags & 0x800 else "cp437"
        if magic != ZIP_MAGIC or method != info.compress_type:
            raise malformed()
        if raw_name.decode(encoding, "replace") != info.orig_filename or flags & 0x1:
            raise malformed()  # a local header that disagrees with the directory
        return int(info.header_offset + LOCAL_HEADER.size + name_length + extra_length)

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
            self._produce(min(target - self._pos, CHUNK))
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
                    self._pending = self._take(max(512, min(want, CHUNK)))
                if not self._pending or self._inflater.eof:
                    raise _shorter()
                data = self._inflate(want)
                self._pending = self._inflater.unconsumed_tail
        self._pos += len(data)
        self._crc = zlib.crc32(data, self._crc)
        if self._budget is not None:
            self._budget.take(len(data))
        return data

    def _inflate(self, want: int) -> bytes:
        """Decompress pending bytes; data that is not valid deflate makes the entry malformed."""
        assert self._inflater is not None
        try:
            return self._inflater.decompress(self._pending, want)
        except zlib.error as exc:
            raise malformed() from exc

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
                    self._pending = self._take(CHUNK)
                if not self._pending:
                    raise _shorter()
                if self._inflate(1):
                    raise Rejected(
                        "archive_limits", _("This file holds more data than its archive declares.")
                    )
                self._pending = self._inflater.unconsumed_tail
            if self._inflater.unused_data or self._consumed < self._info.compress_size:
                raise malformed()
        if self._crc_valid and self._crc != self._info.CRC:
            raise malformed()
        self._checked = True


def buffered(source: Source) -> io.BufferedReader:
    return io.BufferedReader(EntryReader(source), buffer_size=CHUNK)


def _shorter() -> Rejected:
    return Rejected(
        "malformed_archive", _("This file in the archive is damaged: it is shorter than declared.")
    )
