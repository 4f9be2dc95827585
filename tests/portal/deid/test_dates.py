"""Dates and date-times moved by whole days, their formats kept valid."""

from __future__ import annotations

import pytest

from portal.deid.dates import shift_da, shift_dt


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("20240229", -366, "20230228"),
        ("20240301", -1, "20240229"),  # leap day reached
        ("2024.03.01", -1, "20240229"),  # ACR-NEMA form written as DA
        ("20240101 ", -366, "20221231"),  # padding
        ("", -366, ""),
        ("2024", -366, None),
        ("20241301", -1, None),  # no 13th month
        ("00010101", -366, None),  # would leave the calendar
    ],
)
def test_da(value: str, days: int, expected: str | None):
    assert shift_da(value, days) == expected


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("20240101120000", -366, "20221231120000"),
        ("20240101120000.123456+0300", -366, "20221231120000.123456+0300"),
        ("2024010112", -2, "2023123012"),
        ("20240101", -366, "20221231"),
        ("202403", -366, "202303"),  # month precision: moved from the 15th
        ("2024", -366, "2023"),  # year precision: moved from 1 July
        ("2024", -100, "2024"),
        ("2024-0500", -366, "2023-0500"),
        ("", -1, ""),
        ("2024x", -1, None),
        ("202401121", -1, None),  # an odd number of time digits
    ],
)
def test_dt(value: str, days: int, expected: str | None):
    assert shift_dt(value, days) == expected
