"""Watch a byte stream on its way into storage: keep its head and tail, count and limit it.

The ingest pipeline validates by content without a second read: the head (DICOM header, PDF
and image signatures), the tail (end markers that show truncation) and the total size are all
it needs. The type is decided from the first bytes, so an unsupported file is refused before
the rest of it is stored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from portal.i18n import _, format_size
from portal.intake.errors import Rejected
from portal.intake.sniff import FileKind, sniff

SNIFF_BYTES = 132  # DICOM: 128-byte preamble + "DICM"
TAIL_BYTES = 64


class Capture:
    """An iterator over ``chunks`` that records what validation needs and enforces limits."""

    def __init__(
        self, chunks: Iterable[bytes], *, head_limit: int, max_bytes: int, quota_left: int
    ) -> None:
        self._chunks = iter(chunks)
        self._head_limit = head_limit
        self._max_bytes = max_bytes
        self._quota_left = quota_left
        self.head = bytearray()
        self.tail = b""
        self.total = 0
        self.kind: FileKind | None = None

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if not chunk:
                continue
            self._take(chunk)
            yield chunk
        if self.kind is None:
            self.kind = sniff(bytes(self.head))

    def _take(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.total > self._max_bytes:
            raise Rejected(
                "too_large",
                _(
                    "The file is larger than the %(limit)s allowed per file.",
                    limit=format_size(self._max_bytes),
                ),
            )
        if self.total > self._quota_left:
            raise Rejected(
                "quota", _("This case has no room for this file: its upload quota is used up.")
            )
        if len(self.head) < self._head_limit:
            self.head += chunk[: self._head_limit - len(self.head)]
        self.tail = (
            (self.tail + chunk)[-TAIL_BYTES:] if len(chunk) < TAIL_BYTES else chunk[-TAIL_BYTES:]
        )
        if self.kind is None and len(self.head) >= SNIFF_BYTES:
            self.kind = sniff(bytes(self.head))


def chunked(reader: object, size: int = 1024 * 1024) -> Iterator[bytes]:
    """Read a binary file object in chunks."""
    read = reader.read  # type: ignore[attr-defined]
    while True:
        chunk = read(size)
        if not chunk:
            return
        yield chunk
