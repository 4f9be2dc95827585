"""A seekable, read-only file object over a stored object's plaintext.

For readers that need random access (ZIP central directories, PDF cross-reference tables):
it decrypts only the windows it is asked for, through ``Vault.read_range``, and never holds
more than one window in memory.
"""

from __future__ import annotations

import io

from storage.vault import Vault

DEFAULT_WINDOW = 4 * 1024 * 1024


class VaultFile(io.RawIOBase):
    """``read``/``seek``/``tell`` over an encrypted object, window by window."""

    name = "stored object"
    """Readers that name what they read after its source (pydicom) find a name here, not a
    path: the object's key is not shown anywhere."""

    def __init__(
        self,
        vault: Vault,
        *,
        case_id: str,
        wrapped_key: bytes,
        object_key: str,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        super().__init__()
        self._vault, self._case_id, self._wrapped, self._key = (
            vault,
            case_id,
            wrapped_key,
            object_key,
        )
        self._size = vault.size(object_key)
        self._window = window
        self._position = 0
        self._cached_start = 0
        self._cached = b""

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._position >= self._size:
            return 0
        cached_end = self._cached_start + len(self._cached)
        if not self._cached_start <= self._position < cached_end:
            self._cached_start = self._position
            self._cached = self._vault.read_range(
                case_id=self._case_id,
                wrapped_key=self._wrapped,
                object_key=self._key,
                start=self._position,
                end=self._position + max(self._window, len(buffer)),
            )
        offset = self._position - self._cached_start
        chunk = self._cached[offset : offset + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._position += len(chunk)
        return len(chunk)


def buffered(
    vault: Vault, *, case_id: str, wrapped_key: bytes, object_key: str, window: int
) -> io.BufferedReader:
    """A seekable, buffered plaintext view of an object that decrypts only what is read."""
    raw = VaultFile(
        vault, case_id=case_id, wrapped_key=wrapped_key, object_key=object_key, window=window
    )
    return io.BufferedReader(raw, buffer_size=window)
