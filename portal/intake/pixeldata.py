"""Check that a DICOM file's pixel data is all there, from the head, the tail and the size.

Native pixel data must be as long as the image attributes call for and end within the file;
compressed (encapsulated) pixel data must be a run of items closed by its delimiter, followed
by nothing but trailing elements, at the very end of the file.
"""

from __future__ import annotations

import struct

from pydicom.dataset import Dataset
from pydicom.uid import UID

from portal.i18n import _
from portal.intake.dicom_common import (
    LONG_VRS,
    MALFORMED,
    TRUNCATED,
    Parsed,
    cut,
    endian,
    frames,
    integer,
    text,
)
from portal.intake.errors import Rejected

_UNDEFINED = 0xFFFFFFFF
_ITEM = b"\xfe\xff\x00\xe0"
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_TRAILING_PADDING = b"\xfc\xff\xfc\xffOB\x00\x00"


def check_pixel_data(parsed: Parsed, tail: bytes) -> int | None:
    """Raise unless the pixel data is whole; return where its value starts in ``parsed.data``
    (``None``: the file has none)."""
    data, pos, end, ds = parsed.data, parsed.stop, parsed.end, parsed.dataset
    if pos >= end:  # no pixel data: fine for a report, a waveform or an RT plan, not an image
        if "Rows" in ds or "Image Storage" in UID(ds.SOPClassUID).name:
            raise Rejected(
                "no_pixel_data",
                _(
                    "This image file contains no image data; it may be incomplete. "
                    "Please upload it again."
                ),
            )
        return None
    header_length, length = _element_header(data, pos, ds, whole_file=len(data) == end)
    value_at = pos + header_length
    if length == _UNDEFINED:
        _check_encapsulated(ds, data, value_at, end, tail)
        return value_at
    if UID(ds.file_meta.TransferSyntaxUID).is_compressed:
        raise Rejected("malformed_dicom", MALFORMED)
    expected = _expected_length(ds)
    if length < expected or length > expected + (expected % 2):
        raise Rejected(
            "pixel_data_size",
            _("This DICOM file's image data does not match its declared image size."),
        )
    if value_at + length > end:
        raise Rejected("truncated", TRUNCATED)
    return value_at


def _element_header(data: bytes, pos: int, ds: Dataset, *, whole_file: bool) -> tuple[int, int]:
    """Length of the element's header and its value length, as encoded at ``pos``."""
    # Some writers encode the data set in implicit VR under an explicit transfer syntax; pydicom
    # notices and reads it anyway, so the pixel data element is read the same way.
    implicit = ds.original_encoding[0] or not data[pos + 4 : pos + 6].isupper()
    long_form = not implicit and data[pos + 4 : pos + 6] in LONG_VRS
    header_length = 12 if long_form else 8
    if pos + header_length > len(data):
        raise cut(whole_file)
    order = endian(ds)
    if implicit or long_form:
        (length,) = struct.unpack_from(order + "L", data, pos + header_length - 4)
    else:
        (length,) = struct.unpack_from(order + "H", data, pos + 6)
    return header_length, int(length)


def _expected_length(ds: Dataset) -> int:
    """Bytes of native pixel data the image attributes call for (without odd-length padding)."""
    rows, columns = integer(ds, "Rows"), integer(ds, "Columns")
    bits = integer(ds, "BitsAllocated")
    samples = integer(ds, "SamplesPerPixel") or 1
    unreadable_frames = text(ds, "NumberOfFrames") and integer(ds, "NumberOfFrames") is None
    if not rows or not columns or not bits or unreadable_frames:
        raise Rejected("malformed_dicom", _("This DICOM file does not describe its image size."))
    pixels = rows * columns * samples * frames(ds)
    if bits == 1:
        return (pixels + 7) // 8
    length = pixels * ((bits + 7) // 8)
    if text(ds, "PhotometricInterpretation") == "YBR_FULL_422":
        length = length // 3 * 2  # two chroma samples shared by each pair of pixels
    return length


def _check_encapsulated(ds: Dataset, data: bytes, value_at: int, end: int, tail: bytes) -> None:
    """Compressed frames: items closed by a delimiter, then nothing but trailing elements."""
    if not UID(ds.file_meta.TransferSyntaxUID).is_compressed:
        raise Rejected("malformed_dicom", MALFORMED)
    pos = value_at
    while pos + 8 <= len(data):
        tag, length = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if tag == _SEQUENCE_DELIMITER[:4]:
            if not _trailing_elements_fit(data, pos + 8, end):
                raise Rejected("malformed_dicom", MALFORMED)
            return
        if tag != _ITEM or length == _UNDEFINED:
            raise Rejected("malformed_dicom", MALFORMED)
        pos += 8 + length
    # The fragments go on past the head (or past the end of a file that is all in the head).
    if pos + 8 > end or len(data) == end or not _ends_with_delimiter(tail):
        raise Rejected("truncated", TRUNCATED)


def _trailing_elements_fit(data: bytes, pos: int, end: int) -> bool:
    """After the pixel data only whole elements (e.g. trailing padding) may follow, to the end."""
    while pos < end:
        if pos + 12 > len(data) or int.from_bytes(data[pos : pos + 2], "little") < 0x7FE0:
            return False
        vr = data[pos + 4 : pos + 6]
        if vr in LONG_VRS:
            pos += 12 + int.from_bytes(data[pos + 8 : pos + 12], "little")
        elif vr.isupper():
            pos += 8 + int.from_bytes(data[pos + 6 : pos + 8], "little")
        else:
            return False
    return pos == end


def _ends_with_delimiter(tail: bytes) -> bool:
    """The file ends with the Sequence Delimitation Item, or with it and trailing padding."""
    if tail.endswith(_SEQUENCE_DELIMITER):
        return True
    at = tail.rfind(_SEQUENCE_DELIMITER)
    while at >= 0:
        rest = tail[at + len(_SEQUENCE_DELIMITER) :]
        padding = int.from_bytes(rest[8:12], "little")
        if rest.startswith(_TRAILING_PADDING) and len(rest) == 12 + padding:
            return True
        at = tail.rfind(_SEQUENCE_DELIMITER, 0, at)
    return False
