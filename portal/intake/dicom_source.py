"""The bytes a DICOM header is parsed from: the upload's head, then the stored file, bounded.

Most headers end within the head the upload keeps in memory. Some are longer (an Enhanced
MR/CT with large per-frame functional groups, an encapsulated PDF, a large private element):
their reading goes on in the stored object, decrypted window by window (``storage.reader``),
opened only when a read passes the head. Nothing is written to disk and the file is never
held whole.

A hostile header must stay harmless, so the reader enforces what pydicom does not:

- the header (everything before the pixel data) may be at most ``max_bytes`` long;
- pydicom may read at most ``max_elements`` element headers (it reads each one's tag, VR and
  length as 8 bytes; an 8-byte value counts too, so a header of only such values is refused
  at half the number): a file of millions of tiny elements stops early;
- a value may not reach past the end of the file (a 4 GiB length in a small file): reading
  runs out, and the file is refused as ending inside its header;
- sequences may nest at most ``max_depth`` deep: pydicom reads them by recursion, so each
  item's header is checked against the number of items pydicom is reading at that moment
  (its ``read_sequence_item`` frames on the stack);
- values over ``DEFER_BYTES`` are skipped, not read (pydicom's ``defer_size``).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pydicom.filereader import read_sequence_item

from portal.i18n import _, format_size
from portal.intake.errors import Rejected

_ITEM_TAGS = (b"\xfe\xff\x00\xe0", b"\xff\xfe\xe0\x00")  # little and big endian
_ITEM_READER = read_sequence_item.__code__

DEFER_BYTES = 64 * 1024
"""Values longer than this are skipped while the header is read: none the index keeps is."""


class StoredFile(Protocol):
    """The whole file, seekable (``storage.reader.VaultFile``)."""

    def read(self, size: int = -1, /) -> bytes | None: ...
    def seek(self, offset: int, whence: int = io.SEEK_SET, /) -> int: ...
    def close(self) -> None: ...


HeaderOpener = Callable[[], StoredFile]
"""Opens the whole stored file for reading, for headers longer than the head."""


@dataclass(frozen=True)
class HeaderLimits:
    """How large and how busy a DICOM header may be."""

    max_bytes: int = 64 * 1024 * 1024
    max_elements: int = 100_000
    max_depth: int = 64


class HeaderSource(io.RawIOBase):
    """``read``/``seek``/``tell`` over the head, continued in the stored file when one is given.

    Parameters
    ----------
    head : bytes
        The first bytes of the file.
    total_size : int
        The size of the whole file.
    open_body : callable or None
        Opens the whole file; ``None`` when only the head exists (reads past it come back short).
    limits : HeaderLimits
        Bounds on the header, enforced while ``bounded`` is true.
    """

    name = "uploaded file"  # pydicom names its source after this; no path is shown

    def __init__(
        self,
        head: bytes,
        *,
        total_size: int,
        open_body: HeaderOpener | None,
        limits: HeaderLimits,
    ) -> None:
        super().__init__()
        self._head, self._total, self._open_body, self._limits = (
            head,
            total_size,
            open_body,
            limits,
        )
        self._body: StoredFile | None = None
        self._position = 0
        self._element_reads = 0
        self.bounded = True
        self.ran_out = False
        """Whether a read asked for bytes that could not be had (past the head or the file)."""
        self.refusal: Rejected | None = None
        """The bound a read broke: pydicom may turn what a read raises into its own error."""

    @property
    def complete(self) -> bool:
        """Whether every byte of the file can be read (so a short read means a short file)."""
        return len(self._head) == self._total or self._open_body is not None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._total}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset  # past the end (a skipped value too long): reads run out
        return self._position

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0:
            size = max(self._total - self._position, 0)
        readable_end = self._total if self.complete else len(self._head)
        if self.bounded and self._position < readable_end:
            self._refuse_if(self._check(size))
        data = self._read_at(self._position, size)
        at_the_end = not data and self._position == readable_end
        if len(data) < size and not at_the_end:  # a value reaching past the end, say
            self.ran_out = True
        self._position += len(data)
        if self.bounded and size == 8 and data[:4] in _ITEM_TAGS:
            self._refuse_if(self._check_depth())
        return data

    def read_at(self, start: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``start``, outside the header's bounds (the pixel data)."""
        return self._read_at(start, min(size, max(self._total - start, 0)))

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
        super().close()

    def _refuse_if(self, refusal: Rejected | None) -> None:
        if refusal is not None:
            self.refusal = refusal
            raise refusal

    def _check(self, size: int) -> Rejected | None:
        if self._position >= self._limits.max_bytes:
            return Rejected(
                "dicom_header_too_large",
                _(
                    "This DICOM file's header is larger than we accept (%(limit)s before the "
                    "image data).",
                    limit=format_size(self._limits.max_bytes),
                ),
            )
        if size == 8:  # an element's (or item's) tag, VR and length
            self._element_reads += 1
            if self._element_reads > self._limits.max_elements:
                return Rejected(
                    "dicom_header_too_complex",
                    _("This DICOM file's header has more elements than we accept."),
                )
        return None

    def _check_depth(self) -> Rejected | None:
        depth, frame = 0, sys._getframe(1)
        while frame is not None and depth <= self._limits.max_depth:
            depth += frame.f_code is _ITEM_READER
            frame = frame.f_back  # type: ignore[assignment]
        if depth > self._limits.max_depth:
            return Rejected(
                "dicom_header_too_complex",
                _("This DICOM file nests its sequences deeper than we accept."),
            )
        return None

    def _read_at(self, start: int, size: int) -> bytes:
        end = start + size
        if end <= len(self._head) or self._open_body is None or start >= self._total:
            return self._head[start:end]
        if self._body is None:
            self._body = self._open_body()
        self._body.seek(start)
        return self._body.read(size) or b""
