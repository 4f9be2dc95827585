"""Part buffers for multipart uploads: a bounded pool, a zero-copy reader, the filling loop.

Used by the object store only; memory for one upload stays at the pool's buffers.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar, cast

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

T = TypeVar("T")


class BufferPool:
    """At most ``count`` reusable part buffers; taking one blocks until one is given back."""

    def __init__(self, size: int, count: int) -> None:
        self._size = size
        self._free: queue.LifoQueue[bytearray] = queue.LifoQueue()
        self._unmade = count
        self._lock = threading.Lock()

    def take(self) -> bytearray:
        with self._lock:
            if self._free.empty() and self._unmade > 0:
                self._unmade -= 1
                return bytearray(self._size)
        return self._free.get()

    def give_back(self, buffer: bytearray) -> None:
        self._free.put(buffer)


class PartReader(io.RawIOBase):
    """A seekable read-only file over a part buffer, so botocore sends it without a copy."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}
        self._position = max(0, min(len(self._view), base[whence] + offset))
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            data = bytes(self._view[self._position :])
            self._position = len(self._view)
            return data
        # Sized reads (botocore's signing hash, http.client's send loop) get a view, not a
        # copy: they consume it at once, and copies cost ~3 MB of RSS per upload thread.
        view = self._view[self._position : self._position + size]
        self._position += len(view)
        return cast(bytes, view)

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        data = self._view[self._position : self._position + len(target)]
        target[: len(data)] = data
        self._position += len(data)
        return len(data)

    def __len__(self) -> int:
        return len(self._view)


def fill_parts(chunks: Iterable[bytes], pool: BufferPool) -> Iterator[tuple[bytearray, int]]:
    """Copy chunks into pooled part buffers; yields ``(buffer, used)``, the last maybe short."""
    buffer, used = pool.take(), 0
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            count = min(len(buffer) - used, len(view))
            buffer[used : used + count] = view[:count]
            used, view = used + count, view[count:]
            if used == len(buffer):
                yield buffer, used
                buffer, used = pool.take(), 0
    yield buffer, used


def gather(source: Iterator[bytes], limit: int) -> tuple[list[bytes], int]:
    """Chunks from ``source`` until they pass ``limit`` bytes or the source ends; their length."""
    head: list[bytes] = []
    length = 0
    while length <= limit:
        chunk = next(source, None)
        if chunk is None:
            break
        head.append(chunk)
        length += len(chunk)
    return head, length


def prepend_all(first: list[T], rest: Iterator[T]) -> Iterator[T]:
    while first:  # hand each one over, so the list does not keep them alive
        yield first.pop(0)
    yield from rest
