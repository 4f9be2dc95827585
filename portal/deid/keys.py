"""What the case key decides: new UIDs and the date offset, the same in every process.

Both are HMAC-SHA256 under a key derived from the case key for that one purpose, so the UID
mapping and the offset cannot be computed from each other nor without the case key, and a
second process (or next year's export of the same case) produces the same values.
"""

from __future__ import annotations

import hashlib
import hmac

MIN_KEY_BYTES = 16

DATE_OFFSET_MIN_DAYS = 366
DATE_OFFSET_MAX_DAYS = 3653
"""Dates move back between one and ten years: never into the future, far enough to hide the
calendar day, close enough that a reader's sense of the era of a scanner still holds."""

UID_ROOT = "2.25."
"""ISO/IEC 9834-8: ``2.25.`` followed by the decimal value of a UUID (PS3.5 B.2)."""


def purpose_key(case_key: bytes, purpose: str) -> bytes:
    """A key for one use of the case key (``uid``, ``date-offset``)."""
    if len(case_key) < MIN_KEY_BYTES:
        raise ValueError(f"the case key must have at least {MIN_KEY_BYTES} bytes")
    label = f"portal.deid/{purpose}".encode()
    return hmac.new(case_key, label, hashlib.sha256).digest()


def new_uid(original: str, *, uid_key: bytes) -> str:
    """The replacement of ``original``: ``2.25.`` and a UUID (version 8, RFC 9562) from HMAC.

    Trailing padding (space, NUL) is not part of a UID, so ``"1.2.3\\0"`` and ``"1.2.3"`` map
    alike. 128 bits keep the result at most 44 characters (the limit is 64), and collisions as
    unlikely as for random UUIDs.
    """
    value = original.strip(" \0")
    digest = bytearray(hmac.new(uid_key, value.encode("ascii", "replace"), "sha256").digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x80  # version 8: custom
    digest[8] = (digest[8] & 0x3F) | 0x80  # variant: RFC 9562
    return UID_ROOT + str(int.from_bytes(digest, "big"))


def date_offset_days(case_key: bytes) -> int:
    """The case's date shift, in whole days, always negative (see DATE_OFFSET_*)."""
    digest = hmac.new(purpose_key(case_key, "date-offset"), b"days", hashlib.sha256).digest()
    span = DATE_OFFSET_MAX_DAYS - DATE_OFFSET_MIN_DAYS + 1
    return -(DATE_OFFSET_MIN_DAYS + int.from_bytes(digest[:8], "big") % span)
