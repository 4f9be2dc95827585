"""In-process memory of the viewer: parsed data sets, decoded frames of compressed images, and
which series each sign-in session has opened.

All of it lives in this process only. Cached data sets and frames are decrypted plaintext held
in memory, never written anywhere (at most 192 + 64 MiB); data keys stay inside the vault. A
cache hit still passes every access check: the service looks the instance up through the
case's visibility before it asks the cache.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydicom.dataset import Dataset

from portal.viewer.render import Frame

DATASET_CACHE_BYTES = 192 * 1024 * 1024
FRAME_CACHE_BYTES = 64 * 1024 * 1024

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


@dataclass(frozen=True)
class CachedImage:
    """A parsed instance: whole (pixel data in memory) or its header only (large objects,
    whose frames are read from storage one at a time)."""

    dataset: Dataset
    size: int
    """Bytes this entry holds, for the cache's bound."""
    whole: bool


class BoundedCache(Generic[Key, Value]):
    """Least recently used leave first; bounded by the bytes the entries hold."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[Key, tuple[Value, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Key) -> Value | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Key, value: Value, size: int) -> None:
        """Keep ``value`` unless it alone would take more than a quarter of the cache."""
        if size > self.max_bytes // 4:
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self.bytes -= previous[1]
            self._entries[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self.bytes -= evicted

    def values(self) -> list[Value]:
        with self._lock:
            return [value for value, _ in self._entries.values()]

    def __len__(self) -> int:
        return len(self._entries)


def dataset_cache() -> BoundedCache[uuid.UUID, CachedImage]:
    """Parsed instances by stored object id."""
    return BoundedCache(DATASET_CACHE_BYTES)


def frame_cache() -> BoundedCache[tuple[uuid.UUID, int], Frame]:
    """Decoded frames of compressed instances by (stored object id, frame index), so a window
    change does not decode a JPEG 2000 radiograph again."""
    return BoundedCache(FRAME_CACHE_BYTES)


@dataclass
class ViewerState:
    """What the viewer keeps between requests, one per application."""

    datasets: BoundedCache[uuid.UUID, CachedImage] = field(default_factory=dataset_cache)
    frames: BoundedCache[tuple[uuid.UUID, int], Frame] = field(default_factory=frame_cache)
