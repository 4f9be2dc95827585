"""DICOM headers longer than the upload's head: read on from the stored file, within bounds.

``inspect_dicom`` gets the head, tail and size as the upload stream hands them over, and a
way to open the whole file, as the ingest does (there the stored object, decrypted window by
window; here the same bytes in memory, opened only when asked for).
"""

from __future__ import annotations

import io
import time
import tracemalloc
from collections.abc import Callable
from typing import BinaryIO

import pytest

from portal.intake.dicom import DicomHeader, inspect_dicom
from portal.intake.dicom_source import HeaderLimits
from portal.intake.errors import Rejected
from tests.intake import long_headers
from tests.intake.uploads import HEAD_LIMIT, TAIL

LONG_HEADERS: dict[str, Callable[[], bytes]] = {
    "enhanced MR, 4.3 MiB of functional groups": long_headers.enhanced_mr,
    "encapsulated PDF of 6 MiB": long_headers.encapsulated_pdf,
    "5 MiB private OB element": long_headers.private_ob,
}


class Opened:
    """Opens ``data`` as the stored file, counting how often it was opened."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.count = 0

    def __call__(self) -> BinaryIO:
        self.count += 1
        return io.BytesIO(self.data)


def inspect_long(data: bytes, **limits: int) -> DicomHeader:
    return inspect_dicom(
        data[:HEAD_LIMIT],
        tail=data[-TAIL:],
        total_size=len(data),
        open_body=Opened(data),
        limits=HeaderLimits(**limits),
    )


def refusal(data: bytes, **limits: int) -> Rejected:
    with pytest.raises(Rejected) as refused:
        inspect_long(data, **limits)
    assert refused.value.reason.endswith(".")
    return refused.value


@pytest.mark.parametrize("build", LONG_HEADERS.values(), ids=LONG_HEADERS.keys())
def test_a_header_longer_than_the_head_is_read_from_the_stored_file(build):
    data = build()
    opened = Opened(data)
    header = inspect_dicom(
        data[:HEAD_LIMIT], tail=data[-TAIL:], total_size=len(data), open_body=opened
    )
    assert header.patient_id == "SYN-LONG-1" and header.series_number == 7
    assert opened.count == 1
    if header.pixel_data_offset is not None:  # frames are read from there
        assert data[header.pixel_data_offset - 12 : header.pixel_data_offset - 8] == (
            b"\xe0\x7f\x10\x00"
        )


def test_the_enhanced_mr_keeps_its_frames_and_pixel_data_position():
    data = long_headers.enhanced_mr()
    header = inspect_long(data)
    assert header.number_of_frames == 1100 and header.frames_declared
    assert header.pixel_data_offset == len(data) - 1100 * 8


def test_a_short_header_never_opens_the_stored_file():
    data = long_headers.private_ob(size=1024)
    opened = Opened(data)
    inspect_dicom(data[:HEAD_LIMIT], tail=data[-TAIL:], total_size=len(data), open_body=opened)
    assert opened.count == 0


def test_without_the_stored_file_a_long_header_is_still_too_large():
    data = long_headers.private_ob()
    with pytest.raises(Rejected) as refused:
        inspect_dicom(data[:HEAD_LIMIT], tail=data[-TAIL:], total_size=len(data))
    assert refused.value.code == "dicom_header_too_large"


def test_large_values_are_skipped_not_held():
    data = long_headers.encapsulated_pdf(size=16 * 1024 * 1024)
    head, tail = data[:HEAD_LIMIT], data[-TAIL:]
    tracemalloc.start()
    try:
        inspect_dicom(head, tail=tail, total_size=len(data), open_body=Opened(data))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024  # the 16 MiB document was never read


def test_a_header_over_its_limit_is_refused_as_too_large():
    rejected = refusal(long_headers.private_ob(), max_bytes=4 * 1024 * 1024 + 1024)
    assert rejected.code == "dicom_header_too_large"
    assert "4 MiB" in rejected.reason


def test_an_element_claiming_four_gib_is_refused_as_incomplete():
    rejected = refusal(long_headers.claims_four_gib())
    assert rejected.code == "truncated"


def test_an_element_claiming_four_gib_past_the_head_is_refused_as_incomplete():
    padding = long_headers.private_ob(size=5 * 1024 * 1024)
    # The same lie after a header that has already gone past the head.
    at = padding.index(b"\xe0\x7f\x10\x00")
    data = padding[:at] + b"\x09\x00\x02\x10OB\x00\x00\xf0\xff\xff\xff" + b"\0" * 4096
    assert refusal(data).code == "truncated"


def test_sequences_nested_a_thousand_deep_are_refused():
    rejected = refusal(long_headers.nested_sequences(1000))
    assert rejected.code == "dicom_header_too_complex"
    assert "nests its sequences" in rejected.reason


def test_nesting_is_bounded_by_its_limit_not_by_the_interpreter():
    assert refusal(long_headers.nested_sequences(9), max_depth=8).code == (
        "dicom_header_too_complex"
    )
    nested_eight = long_headers.nested_sequences(8)
    with pytest.raises(Rejected) as refused:  # within the limit: read whole, then judged
        inspect_long(nested_eight, max_depth=8)
    assert refused.value.code != "dicom_header_too_complex"


def test_millions_of_tiny_elements_are_refused_quickly():
    data = long_headers.tiny_elements(2_000_000)
    started = time.process_time()  # this process's work: other test runs share the cores
    rejected = refusal(data)
    assert time.process_time() - started < 2.0
    assert rejected.code == "dicom_header_too_complex"


def test_the_element_limit_counts_elements():
    data = long_headers.tiny_elements(5_000)
    assert refusal(data, max_elements=4_000).code == "dicom_header_too_complex"
    with pytest.raises(Rejected) as refused:  # under the limit: read to the end, then judged
        inspect_long(data, max_elements=6_000)
    assert refused.value.code != "dicom_header_too_complex"


def test_memory_follows_the_element_limit_not_the_file():
    data = long_headers.tiny_elements(2_000_000)  # 16 MiB of empty elements
    head, tail = data[:HEAD_LIMIT], data[-TAIL:]
    tracemalloc.start()
    try:
        with pytest.raises(Rejected):
            inspect_dicom(
                head,
                tail=tail,
                total_size=len(data),
                open_body=Opened(data),
                limits=HeaderLimits(max_elements=10_000),
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024
