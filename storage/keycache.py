"""A small in-memory cache of unwrapped data keys: bounded (LRU) and short-lived (TTL).

Keys live only in this process's memory; nothing here is ever written anywhere.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class DataKeyCache:
    """Maps ``(case_id, wrapped key)`` to the unwrapped data key for ``ttl`` seconds."""

    def __init__(
        self,
        *,
        max_entries: int = 1024,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[tuple[str, bytes], tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, case_id: str, wrapped: bytes) -> bytes | None:
        """The cached data key, or ``None`` when absent or expired."""
        with self._lock:
            entry = self._entries.get((case_id, wrapped))
            if entry is None:
                return None
            expires, data_key = entry
            if self._clock() >= expires:
                del self._entries[(case_id, wrapped)]
                return None
            self._entries.move_to_end((case_id, wrapped))
            return data_key

    def put(self, case_id: str, wrapped: bytes, data_key: bytes) -> None:
        """Remember ``data_key``, evicting the least recently used entry when full."""
        if self.max_entries <= 0 or self.ttl <= 0:
            return
        with self._lock:
            self._entries[(case_id, wrapped)] = (self._clock() + self.ttl, data_key)
            self._entries.move_to_end((case_id, wrapped))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def forget_case(self, case_id: str) -> None:
        """Drop every key of ``case_id`` (after crypto-shredding or re-wrapping)."""
        with self._lock:
            for key in [key for key in self._entries if key[0] == case_id]:
                del self._entries[key]

    def clear(self) -> None:
        """Drop every cached key."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class HeaderCache:
    """Maps an object key to its encryption header and stored size (LRU, bounded).

    Objects are written once under a random key and never changed, so what their first bytes
    say stays true; the header holds no secret (salt, nonce prefix, key commitment). Caching it
    lets a range read fetch only the segments it needs.
    """

    def __init__(self, *, max_entries: int = 16384) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[bytes, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, object_key: str) -> tuple[bytes, int] | None:
        with self._lock:
            entry = self._entries.get(object_key)
            if entry is not None:
                self._entries.move_to_end(object_key)
            return entry

    def put(self, object_key: str, header: bytes, stored_size: int) -> None:
        with self._lock:
            self._entries[object_key] = (header, stored_size)
            self._entries.move_to_end(object_key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def forget(self, object_key: str) -> None:
        with self._lock:
            self._entries.pop(object_key, None)
