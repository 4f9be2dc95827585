"""The segment cipher alone: round trips, sizes, ranges and the tampering matrix."""

from __future__ import annotations

import os

import pytest

from storage.cipher import (
    HEADER_BYTES,
    TAG_BYTES,
    ObjectBinding,
    SegmentCipher,
    ciphertext_size,
    decrypt_span,
    decrypt_stream,
    encrypt_stream,
    plaintext_size,
    segment_span,
)
from storage.errors import IntegrityError

SEG = 4096
SEALED = SEG + TAG_BYTES
KEY = bytes(range(32))
BINDING = ObjectBinding("case-1", "0" * 32)


def seal(plaintext: bytes, *, key: bytes = KEY, binding: ObjectBinding = BINDING) -> bytes:
    chunks = [plaintext[i : i + 1000] for i in range(0, len(plaintext), 1000)]
    return b"".join(encrypt_stream(chunks, data_key=key, binding=binding, segment_size=SEG))


def unseal(stored: bytes, *, key: bytes = KEY, binding: ObjectBinding = BINDING) -> bytes:
    chunks = [stored[i : i + 3000] for i in range(0, len(stored), 3000)]
    return b"".join(decrypt_stream(chunks, data_key=key, binding=binding))


@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 3 * SEG + 17, 100_003])
def test_round_trip_and_size_formulas(size: int) -> None:
    plaintext = os.urandom(size)
    stored = seal(plaintext)
    assert len(stored) == ciphertext_size(size, SEG)
    assert plaintext_size(len(stored), SEG) == size
    assert unseal(stored) == plaintext


def test_exactly_n_segments_has_no_empty_trailing_segment() -> None:
    stored = seal(b"x" * (4 * SEG))
    assert len(stored) == HEADER_BYTES + 4 * SEALED


def test_empty_plaintext_is_one_authenticated_empty_segment() -> None:
    stored = seal(b"")
    assert len(stored) == HEADER_BYTES + TAG_BYTES
    assert unseal(stored) == b""
    with pytest.raises(IntegrityError, match="truncated"):
        unseal(stored[:HEADER_BYTES])


def test_same_plaintext_encrypts_differently_each_time() -> None:
    assert seal(b"same bytes") != seal(b"same bytes")


def flip(data: bytes, position: int) -> bytes:
    changed = bytearray(data)
    changed[position] ^= 0x01
    return bytes(changed)


PLAIN = bytes(range(256)) * 64  # 16 KiB: exactly four segments
STORED = seal(PLAIN + b"tail")  # four full segments and a 4-byte fifth


def segment(n: int, stored: bytes = STORED) -> slice:
    start = HEADER_BYTES + n * SEALED
    return slice(start, min(start + SEALED, len(stored)))


TAMPERED = {
    "bit flip in magic": flip(STORED, 0),
    "bit flip in segment size": flip(STORED, 8),
    "bit flip in salt": flip(STORED, 20),
    "bit flip in nonce prefix": flip(STORED, 45),
    "bit flip in commitment": flip(STORED, HEADER_BYTES - 1),
    "bit flip in first segment": flip(STORED, HEADER_BYTES + 5),
    "bit flip in a tag": flip(STORED, HEADER_BYTES + SEALED - 1),
    "bit flip in final segment": flip(STORED, len(STORED) - TAG_BYTES - 1),
    "truncated inside header": STORED[: HEADER_BYTES - 1],
    "truncated after header": STORED[:HEADER_BYTES],
    "truncated at a segment boundary": STORED[: HEADER_BYTES + 2 * SEALED],
    "truncated mid segment": STORED[: HEADER_BYTES + 2 * SEALED + 100],
    "final segment dropped": STORED[: HEADER_BYTES + 4 * SEALED],
    "final tag cut short": STORED[:-1],
    "appended byte": STORED + b"\x00",
    "appended segment": STORED + STORED[segment(1)],
    "segments swapped": STORED[:HEADER_BYTES]
    + STORED[segment(1)]
    + STORED[segment(0)]
    + STORED[HEADER_BYTES + 2 * SEALED :],
    "segment duplicated": STORED[: HEADER_BYTES + SEALED] + STORED[HEADER_BYTES:],
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_tampering_is_rejected(case: str) -> None:
    with pytest.raises(IntegrityError) as caught:
        unseal(TAMPERED[case])
    message = str(caught.value)
    assert any(word in message for word in ("modified", "truncated", "commitment", "magic", "key"))


def test_untampered_reference_decrypts() -> None:
    # The matrix above is meaningful only because the original is accepted.
    assert unseal(STORED) == PLAIN + b"tail"


def test_header_from_another_object_is_rejected() -> None:
    other = seal(PLAIN + b"tail")
    with pytest.raises(IntegrityError):
        unseal(other[:HEADER_BYTES] + STORED[HEADER_BYTES:])


@pytest.mark.parametrize(
    "binding",
    [ObjectBinding("case-2", "0" * 32), ObjectBinding("case-1", "1" * 32)],
    ids=["wrong case id", "wrong object id"],
)
def test_binding_mismatch_is_rejected_before_any_segment(binding: ObjectBinding) -> None:
    with pytest.raises(IntegrityError, match="commitment"):
        decrypt_stream([STORED], data_key=KEY, binding=binding)


def test_wrong_key_is_rejected_by_commitment() -> None:
    with pytest.raises(IntegrityError, match="commitment"):
        decrypt_stream([STORED], data_key=os.urandom(32), binding=BINDING)


def test_commitment_is_what_rejects_a_wrong_key() -> None:
    # With the commitment recomputed under the wrong key, the segments still fail:
    # the header check is not the only line of defence.
    wrong = os.urandom(32)
    cipher = SegmentCipher(wrong, STORED[:HEADER_BYTES], BINDING)
    forged = STORED[: HEADER_BYTES - 32] + cipher.commitment + STORED[HEADER_BYTES:]
    with pytest.raises(IntegrityError, match="segment 0"):
        unseal(forged, key=wrong)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 1),
        (0, SEG),
        (SEG - 1, SEG + 1),
        (SEG, 2 * SEG),
        (100, 3 * SEG + 50),
        (4 * SEG, 4 * SEG + 4),
        (4 * SEG + 3, 4 * SEG + 4),
        (0, 4 * SEG + 4),
    ],
)
def test_span_decrypts_exact_plaintext_range(start: int, end: int) -> None:
    plain = PLAIN + b"tail"
    span = segment_span(start, end, plaintext_size=len(plain), segment_size=SEG)
    cipher = SegmentCipher.for_stored_object(KEY, STORED[:HEADER_BYTES], BINDING)
    got = decrypt_span(cipher, STORED[span.cipher_start : span.cipher_end], span)
    assert got == plain[start:end]


def test_span_of_tampered_segment_is_rejected() -> None:
    span = segment_span(SEG, SEG + 10, plaintext_size=len(PLAIN) + 4, segment_size=SEG)
    cipher = SegmentCipher.for_stored_object(KEY, STORED[:HEADER_BYTES], BINDING)
    damaged = flip(STORED, span.cipher_start + 3)
    with pytest.raises(IntegrityError, match="segment 1"):
        decrypt_span(cipher, damaged[span.cipher_start : span.cipher_end], span)


@pytest.mark.parametrize(
    "stored_size", [HEADER_BYTES - 1, HEADER_BYTES + 15, HEADER_BYTES + SEALED + 3]
)
def test_impossible_stored_sizes_are_rejected(stored_size: int) -> None:
    with pytest.raises(IntegrityError, match="impossible"):
        plaintext_size(stored_size, SEG)


def test_documented_test_vector() -> None:
    """The vector in docs/encryption.md: a reader written from the document must agree."""
    header = bytes.fromhex(
        "534f5045010100001000404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
        "a0a1a2a3a4a5a6d6f5615edb0be8a91eaf8a7dc95046f1fe35b49d796d078ddc5247d0d1fbfadb"
    )
    segment_0 = bytes.fromhex("f74b4759aad945cf240e782af60e1640716fdac9e07fc023210d55ab")
    binding = ObjectBinding("case-1", "0123456789abcdef0123456789abcdef")
    assert binding.encode().hex() == (
        "0006636173652d3100203031323334353637383961626364656630313233343536373839616263646566"
    )
    cipher = SegmentCipher.for_stored_object(bytes(range(32)), header, binding)
    assert cipher.encrypt_segment(0, b"hello, world", last=True) == segment_0
    assert (
        b"".join(decrypt_stream([header + segment_0], data_key=bytes(range(32)), binding=binding))
        == b"hello, world"
    )
