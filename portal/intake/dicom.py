"""Check a DICOM file's header from its first bytes and read what the study index needs.

The server keeps only the head (the first few MiB), the last 64 bytes and the size of an
upload, so every check here works from those three: the header is parsed from the head, the
pixel data element that follows it is measured against the declared image size and the file
size, and compressed pixel data must be closed by its delimiter at the very end of the file.
"""

from __future__ import annotations

import io
import logging
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.multival import MultiValue
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, MediaStorageDirectoryStorage

from portal.intake.errors import Rejected
from portal.intake.sniff import DICOM_MAGIC, DICOM_PREAMBLE

MAX_INFLATED = 64 * 1024 * 1024  # a deflated data set may expand to this much, no more
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}  # Pixel Data, Float, Double Float
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT"}
_ITEM = b"\xfe\xff\x00\xe0"
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_TRAILING_PADDING = b"\xfc\xff\xfc\xffOB\x00\x00"
_PARSING = threading.Lock()

_MALFORMED = "This DICOM file is damaged and cannot be read."
_TRUNCATED = (
    "This file is incomplete: it ends before all of its image data. Please upload it again."
)


@dataclass(frozen=True)
class DicomHeader:
    """What the study index keeps of one DICOM instance (``None`` when absent or empty)."""

    patient_name: str | None
    patient_id: str | None
    patient_birth_date: str | None
    patient_sex: str | None
    study_instance_uid: str
    study_date: str | None
    study_description: str | None
    accession_number: str | None
    series_instance_uid: str
    modality: str | None
    body_part_examined: str | None
    series_description: str | None
    series_number: int | None
    sop_class_uid: str
    sop_instance_uid: str
    instance_number: int | None
    transfer_syntax_uid: str
    rows: int | None
    columns: int | None
    number_of_frames: int
    specific_character_set: str | None


@dataclass(frozen=True)
class _Parsed:
    dataset: Dataset
    data: bytes  # the bytes the data set was read from (the head, or the inflated data set)
    stop: int  # where reading stopped in ``data``: the pixel data element, or the end
    end: int  # where the file ends, in the same coordinates as ``stop``


def inspect_dicom(head: bytes, *, tail: bytes, total_size: int) -> DicomHeader:
    """Validate a DICOM Part 10 file from its head and tail and return its header.

    Parameters
    ----------
    head : bytes
        The first bytes of the file (all of it when the file is smaller than the head limit).
    tail : bytes
        The last bytes of the file (64, or fewer when the file is that small).
    total_size : int
        The size of the whole file in bytes.

    Returns
    -------
    DicomHeader
        Patient, study, series and instance attributes, with names decoded to Unicode.

    Raises
    ------
    Rejected
        ``executable`` (a program hidden in the preamble), ``malformed_dicom``, ``dicomdir``,
        ``dicom_header_too_large``, ``truncated``, ``too_large`` (a deflated data set that
        expands too much), ``invalid_uid`` or ``pixel_data_size``.
    """
    if len(head) > total_size:
        raise ValueError("head is longer than the file")
    _check_preamble(head)
    with quiet_pydicom():
        parsed = _parse(head, total_size)
        header = _header(parsed.dataset)
        _check_pixel_data(parsed, tail)
    return header


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Run pydicom with its warnings and log records silenced: they can quote DICOM values.

    ``warnings.catch_warnings`` swaps process-wide state, so callers are serialised: two
    overlapping blocks would restore each other's filters and leave warnings swallowed.

    Yields
    ------
    None
        While the block runs, pydicom warns and logs nothing.
    """
    pydicom_log = logging.getLogger("pydicom")
    with _PARSING, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        was_disabled, pydicom_log.disabled = pydicom_log.disabled, True
        try:
            yield
        finally:
            pydicom_log.disabled = was_disabled


def _check_preamble(head: bytes) -> None:
    if head[:2] == b"MZ" or head[:4] == b"\x7fELF":
        raise Rejected(
            "executable", "This file hides a program in its DICOM header and is not accepted."
        )
    if head[DICOM_PREAMBLE : DICOM_PREAMBLE + 4] != DICOM_MAGIC:
        raise Rejected("malformed_dicom", "This is not a standard DICOM file.")


class _EdgeAwareBuffer(io.BytesIO):
    """A buffer that remembers whether a reader asked for bytes past its end."""

    ran_out = False

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        if size is not None and 0 < len(data) < size:
            self.ran_out = True
        return data


def _parse(head: bytes, total_size: int) -> _Parsed:
    """Read the header up to the pixel data; tell a cut-off head from a cut-off file."""
    whole_file = len(head) == total_size
    deflated = _transfer_syntax(head) == DeflatedExplicitVRLittleEndian
    if deflated:
        _check_deflated(head, whole_file)
    buffer = _EdgeAwareBuffer(head)
    try:
        dataset = dcmread(buffer, stop_before_pixels=True)
    except Exception as exc:  # pydicom signals bad input with many exception types
        if buffer.ran_out or buffer.tell() >= len(head):
            raise _cut(whole_file) from exc
        raise Rejected("malformed_dicom", _MALFORMED) from exc
    data, stop = head, buffer.tell()
    if deflated:  # pydicom read the data set from its own inflated copy
        inflated = dataset.buffer
        if not isinstance(inflated, DicomBytesIO):
            raise Rejected("malformed_dicom", _MALFORMED)
        data, stop = inflated.getvalue(), inflated.tell()
    parsed = _Parsed(dataset, data, stop, end=len(data) if deflated else total_size)
    if stop + 4 <= len(data) and _tag_at(data, stop, dataset) in _PIXEL_TAGS:
        return parsed
    if buffer.ran_out:
        raise _cut(whole_file)
    if stop < len(data):  # reading ended early on something that is not pixel data
        raise Rejected("malformed_dicom", _MALFORMED)
    if not whole_file:  # the header goes on past the head
        raise _cut(whole_file)
    return parsed  # a complete file without pixel data


def _cut(whole_file: bool) -> Rejected:
    if whole_file:
        return Rejected("truncated", "This file is incomplete: it ends inside its DICOM header.")
    return Rejected(
        "dicom_header_too_large",
        "This DICOM file's header is larger than we can check. Please contact us to send it.",
    )


def _meta_elements(head: bytes) -> Iterator[tuple[int, int, int]]:
    """(element, value offset, value length) of each File Meta element (explicit VR LE)."""
    pos = DICOM_PREAMBLE + 4
    while pos + 12 <= len(head) and head[pos : pos + 2] == b"\x02\x00":
        element, vr = struct.unpack_from("<H2s", head, pos + 2)
        if vr in _LONG_VRS:
            value_at, length = pos + 12, struct.unpack_from("<L", head, pos + 8)[0]
        else:
            value_at, length = pos + 8, struct.unpack_from("<H", head, pos + 6)[0]
        yield element, value_at, length
        pos = value_at + length


def _transfer_syntax(head: bytes) -> str | None:
    for element, value_at, length in _meta_elements(head):
        if element == 0x0010:
            return head[value_at : value_at + length].rstrip(b"\x00 ").decode("ascii", "replace")
    return None


def _check_deflated(head: bytes, whole_file: bool) -> None:
    """pydicom inflates a deflated data set in one go: bound it before pydicom sees it."""
    if not whole_file:
        raise _cut(whole_file)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    start = _meta_end(head)
    try:
        inflated = inflater.decompress(head[start:], MAX_INFLATED + 1)
    except zlib.error as exc:
        raise Rejected("malformed_dicom", _MALFORMED) from exc
    if len(inflated) > MAX_INFLATED:
        raise Rejected("too_large", "This compressed DICOM file expands to more than we accept.")
    if not inflater.eof:
        raise Rejected("truncated", _TRUNCATED)


def _meta_end(head: bytes) -> int:
    end = DICOM_PREAMBLE + 4
    for _, value_at, length in _meta_elements(head):
        end = value_at + length
    return end


def _tag_at(data: bytes, pos: int, dataset: Dataset) -> int:
    group, element = struct.unpack_from(_endian(dataset) + "HH", data, pos)
    return int(group << 16 | element)


def _endian(dataset: Dataset) -> str:
    return "<" if dataset.original_encoding[1] else ">"


# -- the header ------------------------------------------------------------------------------


def _header(ds: Dataset) -> DicomHeader:
    try:
        if ds.file_meta.get("MediaStorageSOPClassUID") == MediaStorageDirectoryStorage:
            raise Rejected(
                "dicomdir",
                "This is the index file (DICOMDIR) of an imaging CD, not an image. "
                "Please upload the whole CD folder or a ZIP of it.",
            )
        return DicomHeader(
            patient_name=_text(ds, "PatientName"),
            patient_id=_text(ds, "PatientID"),
            patient_birth_date=_text(ds, "PatientBirthDate"),
            patient_sex=_text(ds, "PatientSex"),
            study_instance_uid=_uid(ds, "StudyInstanceUID"),
            study_date=_text(ds, "StudyDate"),
            study_description=_text(ds, "StudyDescription"),
            accession_number=_text(ds, "AccessionNumber"),
            series_instance_uid=_uid(ds, "SeriesInstanceUID"),
            modality=_text(ds, "Modality"),
            body_part_examined=_text(ds, "BodyPartExamined"),
            series_description=_text(ds, "SeriesDescription"),
            series_number=_integer(ds, "SeriesNumber"),
            sop_class_uid=_uid(ds, "SOPClassUID"),
            sop_instance_uid=_uid(ds, "SOPInstanceUID"),
            instance_number=_integer(ds, "InstanceNumber"),
            transfer_syntax_uid=_uid(ds.file_meta, "TransferSyntaxUID"),
            rows=_integer(ds, "Rows"),
            columns=_integer(ds, "Columns"),
            number_of_frames=_frames(ds),
            specific_character_set=_text(ds, "SpecificCharacterSet"),
        )
    except Rejected:
        raise
    except Exception as exc:  # a value pydicom cannot convert, e.g. a broken sequence
        raise Rejected("malformed_dicom", _MALFORMED) from exc


def _text(ds: Dataset, keyword: str) -> str | None:
    value: Any = ds.get(keyword)
    if value is None:
        return None
    if isinstance(value, MultiValue):
        value = "\\".join(str(item) for item in value)
    text = str(value).strip(" \x00")
    return text or None


def _integer(ds: Dataset, keyword: str) -> int | None:
    value: Any = ds.get(keyword)
    if isinstance(value, MultiValue):
        value = value[0] if value else None
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _frames(ds: Dataset) -> int:
    frames = _integer(ds, "NumberOfFrames")
    return frames if frames is not None and frames > 0 else 1


def _uid(ds: Dataset, keyword: str) -> str:
    value = _text(ds, keyword)
    if value is None or not UID(value).is_valid:
        raise Rejected(
            "invalid_uid",
            "This DICOM file lacks a valid study, series or image identifier, so it cannot be "
            "filed with a study.",
        )
    return value


# -- the pixel data --------------------------------------------------------------------------


def _check_pixel_data(parsed: _Parsed, tail: bytes) -> None:
    data, pos, end, ds = parsed.data, parsed.stop, parsed.end, parsed.dataset
    if pos >= end:  # no pixel data: fine for a report, a waveform or an RT plan, not an image
        if "Rows" in ds or "Image Storage" in UID(ds.SOPClassUID).name:
            raise Rejected(
                "no_pixel_data",
                "This image file contains no image data; it may be incomplete. "
                "Please upload it again.",
            )
        return
    header_length, length = _element_header(data, pos, ds, whole_file=len(data) == end)
    value_at = pos + header_length
    if length == _UNDEFINED:
        _check_encapsulated(ds, data, value_at, end, tail)
        return
    if UID(ds.file_meta.TransferSyntaxUID).is_compressed:
        raise Rejected("malformed_dicom", _MALFORMED)
    expected = _expected_length(ds)
    if length < expected or length > expected + (expected % 2):
        raise Rejected(
            "pixel_data_size",
            "This DICOM file's image data does not match its declared image size.",
        )
    if value_at + length > end:
        raise Rejected("truncated", _TRUNCATED)


def _element_header(data: bytes, pos: int, ds: Dataset, *, whole_file: bool) -> tuple[int, int]:
    """Length of the element's header and its value length, as encoded at ``pos``."""
    # Some writers encode the data set in implicit VR under an explicit transfer syntax; pydicom
    # notices and reads it anyway, so the pixel data element is read the same way.
    implicit = ds.original_encoding[0] or not data[pos + 4 : pos + 6].isupper()
    long_form = not implicit and data[pos + 4 : pos + 6] in _LONG_VRS
    header_length = 12 if long_form else 8
    if pos + header_length > len(data):
        raise _cut(whole_file)
    endian = _endian(ds)
    if implicit or long_form:
        (length,) = struct.unpack_from(endian + "L", data, pos + header_length - 4)
    else:
        (length,) = struct.unpack_from(endian + "H", data, pos + 6)
    return header_length, int(length)


def _expected_length(ds: Dataset) -> int:
    """Bytes of native pixel data the image attributes call for (without odd-length padding)."""
    rows, columns = _integer(ds, "Rows"), _integer(ds, "Columns")
    bits = _integer(ds, "BitsAllocated")
    samples = _integer(ds, "SamplesPerPixel") or 1
    unreadable_frames = _text(ds, "NumberOfFrames") and _integer(ds, "NumberOfFrames") is None
    if not rows or not columns or not bits or unreadable_frames:
        raise Rejected("malformed_dicom", "This DICOM file does not describe its image size.")
    pixels = rows * columns * samples * _frames(ds)
    if bits == 1:
        return (pixels + 7) // 8
    length = pixels * ((bits + 7) // 8)
    if _text(ds, "PhotometricInterpretation") == "YBR_FULL_422":
        length = length // 3 * 2  # two chroma samples shared by each pair of pixels
    return length


def _check_encapsulated(ds: Dataset, data: bytes, value_at: int, end: int, tail: bytes) -> None:
    """Compressed frames: items closed by a delimiter, then nothing but trailing elements."""
    if not UID(ds.file_meta.TransferSyntaxUID).is_compressed:
        raise Rejected("malformed_dicom", _MALFORMED)
    pos = value_at
    while pos + 8 <= len(data):
        tag, length = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if tag == _SEQUENCE_DELIMITER[:4]:
            if not _trailing_elements_fit(data, pos + 8, end):
                raise Rejected("malformed_dicom", _MALFORMED)
            return
        if tag != _ITEM or length == _UNDEFINED:
            raise Rejected("malformed_dicom", _MALFORMED)
        pos += 8 + length
    # The fragments go on past the head (or past the end of a file that is all in the head).
    if pos + 8 > end or len(data) == end or not _ends_with_delimiter(tail):
        raise Rejected("truncated", _TRUNCATED)


def _trailing_elements_fit(data: bytes, pos: int, end: int) -> bool:
    """After the pixel data only whole elements (e.g. trailing padding) may follow, to the end."""
    while pos < end:
        if pos + 12 > len(data) or int.from_bytes(data[pos : pos + 2], "little") < 0x7FE0:
            return False
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
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
