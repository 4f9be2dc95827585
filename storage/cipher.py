"""Streaming authenticated encryption: AES-256-GCM in segments with HKDF subkeys.

The cipher is handed a data key and never looks keys up. See docs/encryption.md for the
byte format; the constants and layout here are the normative implementation of it.
"""

from __future__ import annotations

import hmac
import itertools
import secrets
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storage.errors import IntegrityError

MAGIC = b"SOPE"
FORMAT_VERSION = 1
ALGORITHM_AES256GCM_HKDF_SHA256 = 1
SALT_BYTES = 32
NONCE_PREFIX_BYTES = 7
COMMITMENT_BYTES = 32
TAG_BYTES = 16
KEY_BYTES = 32
MAX_SEGMENTS = 2**32
_HEADER = struct.Struct(f">4sBBI{SALT_BYTES}s{NONCE_PREFIX_BYTES}s{COMMITMENT_BYTES}s")
HEADER_BYTES = _HEADER.size  # 81
_COMMITTED_FIELDS = HEADER_BYTES - COMMITMENT_BYTES
Piece = bytes | memoryview
_SEGMENT_KEY_LABEL = b"SOPE v1 segment key\x00"
_COMMITMENT_LABEL = b"SOPE v1 key commitment\x00"


@dataclass(frozen=True)
class ObjectBinding:
    """What a ciphertext is bound to: decrypting under another case or object id fails."""

    case_id: str
    object_id: str

    def encode(self) -> bytes:
        """``u16 len | case_id | u16 len | object_id`` (UTF-8, big-endian lengths)."""
        case, obj = self.case_id.encode("utf-8"), self.object_id.encode("utf-8")
        return struct.pack(">H", len(case)) + case + struct.pack(">H", len(obj)) + obj


@dataclass(frozen=True)
class SegmentSpan:
    """The segments holding plaintext bytes ``[start, end)`` and where they sit in the object."""

    first: int
    last: int
    cipher_start: int
    cipher_end: int
    skip: int
    length: int
    total_segments: int


class SegmentCipher:
    """Encrypts and decrypts the segments of one object (subkey already derived)."""

    def __init__(self, data_key: bytes, header: bytes, binding: ObjectBinding) -> None:
        if len(data_key) != KEY_BYTES:
            raise ValueError("data key must be 32 bytes")
        fields = _HEADER.unpack(header)
        self.segment_size: int = fields[3]
        salt: bytes = fields[4]
        self._nonce_prefix: bytes = fields[5]
        info = header[:_COMMITTED_FIELDS] + binding.encode()
        self.commitment = _hkdf(data_key, salt, _COMMITMENT_LABEL + info)
        self._aead = AESGCM(_hkdf(data_key, salt, _SEGMENT_KEY_LABEL + info))
        self._aad = header[:_COMMITTED_FIELDS] + self.commitment + binding.encode()

    @classmethod
    def for_new_object(
        cls, data_key: bytes, binding: ObjectBinding, segment_size: int
    ) -> tuple[SegmentCipher, bytes]:
        """A cipher with fresh salt and nonce prefix, and the header to store first."""
        fields = _HEADER.pack(
            MAGIC,
            FORMAT_VERSION,
            ALGORITHM_AES256GCM_HKDF_SHA256,
            segment_size,
            secrets.token_bytes(SALT_BYTES),
            secrets.token_bytes(NONCE_PREFIX_BYTES),
            bytes(COMMITMENT_BYTES),
        )
        cipher = cls(data_key, fields, binding)
        return cipher, fields[:_COMMITTED_FIELDS] + cipher.commitment

    @classmethod
    def for_stored_object(
        cls, data_key: bytes, header: bytes, binding: ObjectBinding
    ) -> SegmentCipher:
        """A cipher for an existing object, after checking its header and key commitment.

        Raises
        ------
        IntegrityError
            Not an object of this format, or the key/case/object id does not match.
        """
        check_header(header)
        cipher = cls(data_key, header, binding)
        if not hmac.compare_digest(cipher.commitment, header[_COMMITTED_FIELDS:]):
            raise IntegrityError(
                "object was not encrypted with this key for this case and object "
                "(key commitment mismatch): wrong key, wrong case, swapped or altered header"
            )
        return cipher

    def encrypt_segment(self, index: int, plaintext: bytes | memoryview, *, last: bool) -> bytes:
        """Ciphertext and tag of segment ``index``."""
        return self._aead.encrypt(self._nonce(index, last), plaintext, self._aad)

    def decrypt_segment(self, index: int, sealed: bytes | memoryview, *, last: bool) -> bytes:
        """Plaintext of segment ``index``; raises :class:`IntegrityError` if it was altered."""
        try:
            return self._aead.decrypt(self._nonce(index, last), sealed, self._aad)
        except InvalidTag:
            where = "final segment" if last else "segment"
            raise IntegrityError(
                f"{where} {index} failed authentication: the object was modified, truncated, "
                "extended or its segments reordered"
            ) from None

    def _nonce(self, index: int, last: bool) -> bytes:
        if not 0 <= index < MAX_SEGMENTS:
            raise IntegrityError("object has more segments than the format allows")
        return self._nonce_prefix + struct.pack(">IB", index, 1 if last else 0)


def check_header(header: bytes) -> int:
    """Validate the fixed header fields; returns the segment size.

    Raises
    ------
    IntegrityError
        Too short, wrong magic, unknown version or algorithm, or impossible segment size.
    """
    if len(header) < HEADER_BYTES:
        raise IntegrityError("object is truncated: its encryption header is incomplete")
    magic, version, algorithm, segment_size, *_ = _HEADER.unpack(header[:HEADER_BYTES])
    if magic != MAGIC:
        raise IntegrityError("object is not in the portal's encrypted format (bad magic)")
    if version != FORMAT_VERSION or algorithm != ALGORITHM_AES256GCM_HKDF_SHA256:
        raise IntegrityError(f"unsupported encryption format {version}/{algorithm}")
    if segment_size < 1:
        raise IntegrityError("encryption header has an invalid segment size")
    return int(segment_size)


def encrypt_stream(
    chunks: Iterable[bytes], *, data_key: bytes, binding: ObjectBinding, segment_size: int
) -> Iterator[bytes]:
    """Yield the header, then each sealed segment of the plaintext ``chunks``.

    Chunks must not be mutated after they are yielded (segments may be views into them).
    """
    cipher, header = SegmentCipher.for_new_object(data_key, binding, segment_size)
    yield header
    for index, (segment, last) in enumerate(_with_last_flag(_pieces(chunks, segment_size))):
        yield cipher.encrypt_segment(index, segment, last=last)


def decrypt_stream(
    chunks: Iterable[bytes], *, data_key: bytes, binding: ObjectBinding
) -> Iterator[bytes]:
    """Check the header now, then return an iterator of plaintext segments.

    Truncation, reordering, appended bytes and bit flips raise :class:`IntegrityError`
    from the iterator at the segment where they are found.
    """
    source = iter(chunks)
    head = bytearray()
    while len(head) < HEADER_BYTES and (chunk := next(source, None)) is not None:
        head += chunk
    header, rest = bytes(head[:HEADER_BYTES]), bytes(head[HEADER_BYTES:])
    cipher = SegmentCipher.for_stored_object(data_key, header, binding)
    return _decrypt_segments(cipher, itertools.chain((rest,), source))


def _decrypt_segments(cipher: SegmentCipher, body: Iterable[bytes]) -> Iterator[bytes]:
    sealed = _pieces(body, cipher.segment_size + TAG_BYTES)
    for index, (segment, last) in enumerate(_with_last_flag(sealed)):
        if last and len(segment) < TAG_BYTES:
            raise IntegrityError("object is truncated: its final segment is shorter than a tag")
        yield cipher.decrypt_segment(index, segment, last=last)


def _pieces(chunks: Iterable[bytes], size: int) -> Iterator[Piece]:
    """Re-cut ``chunks`` into ``size``-byte pieces (the final one shorter), copying only
    the pieces that straddle two chunks."""
    carry = bytearray()
    for chunk in chunks:
        view = memoryview(chunk)
        if carry:
            needed = size - len(carry)
            carry += view[:needed]
            view = view[needed:]
            if len(carry) < size:
                continue
            yield bytes(carry)
            carry = bytearray()
        while len(view) >= size:
            yield view[:size]
            view = view[size:]
        carry += view
    if carry:
        yield bytes(carry)


def _with_last_flag(
    pieces: Iterator[bytes | memoryview],
) -> Iterator[tuple[bytes | memoryview, bool]]:
    """Pair each piece with "is it the last one?"; an empty input is one empty last piece."""
    held: Piece = b""
    for count, piece in enumerate(pieces):
        if count:
            yield held, False
        held = piece
    yield held, True


def ciphertext_size(plaintext_size: int, segment_size: int) -> int:
    """Stored bytes for ``plaintext_size`` bytes of plaintext."""
    segments = max(1, -(-plaintext_size // segment_size))
    return HEADER_BYTES + plaintext_size + segments * TAG_BYTES


def plaintext_size(stored_size: int, segment_size: int) -> int:
    """Plaintext bytes of a stored object of ``stored_size`` bytes.

    Raises
    ------
    IntegrityError
        No valid object has that size (truncated or extended).
    """
    body = stored_size - HEADER_BYTES
    full, rest = divmod(body, segment_size + TAG_BYTES)
    if body < TAG_BYTES or 0 < rest < TAG_BYTES:
        raise IntegrityError(
            f"stored object size {stored_size} is impossible: truncated or extended"
        )
    return full * segment_size + max(0, rest - TAG_BYTES)


def segment_span(start: int, end: int, *, plaintext_size: int, segment_size: int) -> SegmentSpan:
    """The segments and stored byte range needed for plaintext ``[start, end)``."""
    if not 0 <= start < end <= plaintext_size:
        raise ValueError(f"range [{start}, {end}) is not inside 0..{plaintext_size}")
    sealed = segment_size + TAG_BYTES
    total = max(1, -(-plaintext_size // segment_size))
    first, last = start // segment_size, (end - 1) // segment_size
    last_length = plaintext_size - last * segment_size if last == total - 1 else segment_size
    return SegmentSpan(
        first=first,
        last=last,
        cipher_start=HEADER_BYTES + first * sealed,
        cipher_end=HEADER_BYTES + last * sealed + min(last_length, segment_size) + TAG_BYTES,
        skip=start - first * segment_size,
        length=end - start,
        total_segments=total,
    )


def decrypt_span(cipher: SegmentCipher, stored: bytes, span: SegmentSpan) -> bytes:
    """Plaintext of ``span`` from the stored bytes ``[span.cipher_start, span.cipher_end)``."""
    if len(stored) != span.cipher_end - span.cipher_start:
        raise IntegrityError("object is shorter than its size promised: truncated while reading")
    sealed = cipher.segment_size + TAG_BYTES
    view = memoryview(stored)
    parts = [
        cipher.decrypt_segment(
            index,
            view[(index - span.first) * sealed : (index - span.first + 1) * sealed],
            last=index == span.total_segments - 1,
        )
        for index in range(span.first, span.last + 1)
    ]
    return b"".join(parts)[span.skip : span.skip + span.length]


def _hkdf(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=info).derive(key)
