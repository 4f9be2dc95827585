"""PDF reports and photos of paper records are checked from their head and tail."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image
from pypdf import PdfWriter

from portal.intake.errors import Rejected
from portal.intake.records import inspect_image, inspect_pdf, pdf_page_count
from portal.intake.sniff import FileKind
from portal.settings import Settings
from tests.intake.uploads import HEAD_LIMIT, TAIL

MAX_PIXELS = Settings.model_fields["record_max_pixels"].default


def _pdf(pages: int = 2, *, password: str | None = None) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    if password:
        writer.encrypt(password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _photo(kind: str, width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format=kind)
    return out.getvalue()


def _check_pdf(data: bytes) -> None:
    inspect_pdf(data[:HEAD_LIMIT], tail=data[-TAIL:], total_size=len(data))


def _check_image(data: bytes, kind: FileKind) -> tuple[int, int]:
    return inspect_image(
        data[:HEAD_LIMIT],
        kind=kind,
        tail=data[-TAIL:],
        total_size=len(data),
        max_pixels=MAX_PIXELS,
    )


def _refusal(check, *args, **kwargs) -> Rejected:
    with pytest.raises(Rejected) as refused:
        check(*args, **kwargs)
    return refused.value


# -- PDF ---------------------------------------------------------------------------------------


def test_a_pdf_report_is_accepted():
    _check_pdf(_pdf(3))


@pytest.mark.parametrize("trailer", [b"\n", b"\r\n", b"  \n\x00\x00", b"\x00" * 40])
def test_whitespace_and_nul_padding_after_the_end_marker_are_tolerated(trailer):
    _check_pdf(_pdf() + trailer)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda data: data[:-200],  # upload cut short
        lambda data: data[: len(data) // 2],
        lambda data: data + b"<script>trailing garbage</script>",
        lambda data: data + b"\n" * 80,  # the marker is pushed out of the tail
        lambda data: b"\n" + data,  # the header must be at the very start
        lambda data: data.replace(b"%PDF-", b"%PDX-", 1),
    ],
    ids=["cut", "half", "garbage-after-eof", "marker-out-of-tail", "offset-header", "no-header"],
)
def test_a_pdf_that_does_not_start_and_end_properly_is_refused(mutate):
    refused = _refusal(_check_pdf, mutate(_pdf()))
    assert refused.code == "malformed_pdf"


def test_a_tiny_file_that_only_has_the_markers_is_refused():
    assert _refusal(_check_pdf, b"%PDF-%%EO").code == "malformed_pdf"


def test_page_count_is_read_from_a_seekable_file():
    assert pdf_page_count(io.BytesIO(_pdf(7))) == 7


@pytest.mark.parametrize(
    "data",
    [b"", b"%PDF-1.7\n%%EOF", b"not a pdf at all", _pdf(3)[:300], _pdf(2, password="secret")],
    ids=["empty", "markers-only", "text", "cut", "encrypted"],
)
def test_page_count_gives_up_quietly(data):
    assert pdf_page_count(io.BytesIO(data)) is None


# -- photos ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "kind"), [("PNG", FileKind.png), ("JPEG", FileKind.jpeg)])
def test_photos_report_their_dimensions(fmt, kind):
    assert _check_image(_photo(fmt, 640, 480), kind) == (640, 480)


def test_a_large_photo_is_measured_from_its_head_only():
    data = _photo("PNG", 1200, 900)
    assert inspect_image(
        data[:4096], kind=FileKind.png, tail=data[-TAIL:], total_size=len(data), max_pixels=10**7
    ) == (
        1200,
        900,
    )


def test_a_few_bytes_after_the_jpeg_end_marker_are_tolerated():
    assert _check_image(_photo("JPEG") + b"\x00" * 30, FileKind.jpeg) == (64, 48)


def test_a_jpeg_with_a_video_appended_is_refused_with_advice():
    motion_photo = _photo("JPEG") + b"\x00\x00\x00\x18ftypmp42" + bytes(4000)
    refused = _refusal(_check_image, motion_photo, FileKind.jpeg)
    assert refused.code == "malformed_image"
    assert "regular photo" in refused.reason


@pytest.mark.parametrize(("fmt", "kind"), [("PNG", FileKind.png), ("JPEG", FileKind.jpeg)])
def test_a_photo_cut_short_is_refused(fmt, kind):
    data = _photo(fmt, 320, 240)
    assert _refusal(_check_image, data[:-20], kind).code == "malformed_image"


def test_bytes_after_the_png_end_chunk_are_refused():
    assert _refusal(_check_image, _photo("PNG") + b"extra", FileKind.png).code == "malformed_image"


def test_the_kind_must_match_the_content():
    assert _refusal(_check_image, _photo("PNG"), FileKind.jpeg).code == "malformed_image"


def test_a_damaged_header_is_refused():
    damaged = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100 + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    assert _refusal(_check_image, damaged, FileKind.png).code == "malformed_image"


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares huge dimensions: a decompression bomb's calling card."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    end = b"IEND"
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + struct.pack(">I", 0)
        + end
        + struct.pack(">I", zlib.crc32(end))
    )


@pytest.mark.parametrize(
    ("width", "height"),
    [(13_000, 13_000), (20_000, 20_000), (100_000, 2_001), (1, 2**31 - 1), (7_100, 7_100)],
)
def test_photos_with_more_pixels_than_a_report_needs_are_refused(width, height):
    refused = _refusal(_check_image, _png_header(width, height), FileKind.png)
    assert refused.code == "image_too_large"
    assert "more than 50 megapixels" in refused.reason and "smaller photo" in refused.reason


def test_a_48_megapixel_phone_photo_header_is_accepted():
    assert _check_image(_png_header(8064, 6048), FileKind.png) == (8064, 6048)
    assert _check_image(_png_header(8000, 6000), FileKind.png) == (8000, 6000)


def test_the_pixel_limit_is_the_one_given():
    data = _png_header(3000, 2000)
    refused = _refusal(
        inspect_image,
        data,
        kind=FileKind.png,
        tail=data[-TAIL:],
        total_size=len(data),
        max_pixels=5_000_000,
    )
    assert refused.code == "image_too_large" and "more than 5 megapixels" in refused.reason


def test_inspect_image_is_only_for_images():
    with pytest.raises(ValueError):
        inspect_image(b"%PDF-", kind=FileKind.pdf, tail=b"", total_size=5, max_pixels=MAX_PIXELS)


class _RawReader(io.RawIOBase):
    """A raw, unbuffered reader like the storage layer's decrypting one."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(min(len(buffer), 1000))  # short reads, as raw readers may do
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._data.seek(offset, whence)

    def tell(self) -> int:
        return self._data.tell()


def test_page_count_reads_through_a_raw_reader_and_leaves_it_open():
    raw = _RawReader(_pdf(4))
    assert pdf_page_count(raw) == 4
    assert not raw.closed
