"""Moving DA and DT values by whole days, keeping their format valid (PS3.5 6.2).

A DA is ``YYYYMMDD`` (the ACR-NEMA form ``YYYY.MM.DD`` is read too and written as DA). A DT is
``YYYY[MM[DD[HH[MM[SS[.F{1-6}]]]]]][&ZZXX]``: a value that stops at the month or the year
keeps that precision, moved from the middle of its month or year, so an interval between two
partial values is kept to within that precision. The time of day, the fraction and the UTC
offset never change (the shift is whole days), so TM values are left as they are. A value we
cannot read is not kept: the caller empties it.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

_DA = re.compile(r"^(\d{4})\.?(\d{2})\.?(\d{2})$")
_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?((?:\d{2}){0,3}(?:\.\d{1,6})?)([+-]\d{4})?$")


def shift_da(value: str, days: int) -> str | None:
    """``value`` (one DA) moved by ``days``; ``""`` stays ``""``; None when unreadable."""
    text = value.strip()
    if not text:
        return ""
    match = _DA.match(text)
    if match is None:
        return None
    try:
        moved = date(int(match[1]), int(match[2]), int(match[3])) + timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return moved.strftime("%Y%m%d") if moved.year >= 1 else None


def shift_dt(value: str, days: int) -> str | None:
    """``value`` (one DT) moved by ``days`` at its own precision; None when unreadable."""
    text = value.strip()
    if not text:
        return ""
    match = _DT.match(text)
    if match is None:
        return None
    year, month, day, rest, zone = match.groups()
    if rest and day is None:
        return None  # a time without a day is not a DT
    try:
        anchor = date(int(year), int(month or 7), int(day or (15 if month else 1)))
        moved = anchor + timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    if moved.year < 1:
        return None
    shifted = f"{moved.year:04d}"
    if month:
        shifted += f"{moved.month:02d}"
    if day:
        shifted += f"{moved.day:02d}"
    return shifted + (rest or "") + (zone or "")
