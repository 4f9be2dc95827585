"""Check a DICOM file's header from its first bytes and read what the study index needs.

The server keeps only the head (the first few MiB), the last 64 bytes and the size of an
upload, so every check here works from those three: the header is parsed from the head, the
pixel data element that follows it is measured against the declared image size and the file
size, and compressed pixel data must be closed by its delimiter at the very end of the file.
A header longer than the head is read on from the stored file, within bounds
(``dicom_source.py``).

The pixel data checks live in ``pixeldata.py``, and what both share in ``dicom_common.py``.
"""

from __future__ import annotations

import logging
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, MediaStorageDirectoryStorage

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
from portal.intake.dicom_source import DEFER_BYTES, HeaderLimits, HeaderOpener, HeaderSource
from portal.intake.errors import Rejected
from portal.intake.pixeldata import check_pixel_data
from portal.intake.sniff import DICOM_MAGIC, DICOM_PREAMBLE

MAX_INFLATED = 64 * 1024 * 1024  # a deflated data set may expand to this much, no more
_PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}  # Pixel Data, Float, Double Float
_PARSING = threading.Lock()

__all__ = ["MAX_INFLATED", "DicomHeader", "inspect_dicom", "quiet_pydicom"]


@dataclass(frozen=True)
class DicomHeader:
    """What the study index keeps of one DICOM instance (``None`` when absent or empty)."""

    patient_name: str | None
    patient_id: str | None
    patient_birth_date: str | None
    patient_sex: str | None
    study_instance_uid: str
    study_date: str | None
    study_time: str | None
    timezone_offset: str | None
    study_id: str | None
    referring_physician_name: str | None
    study_description: str | None
    accession_number: str | None
    series_instance_uid: str
    modality: str | None
    body_part_examined: str | None
    series_description: str | None
    series_number: int | None
    series_date: str | None
    series_time: str | None
    sop_class_uid: str
    sop_instance_uid: str
    instance_number: int | None
    transfer_syntax_uid: str
    rows: int | None
    columns: int | None
    bits_allocated: int | None
    samples_per_pixel: int | None
    number_of_frames: int
    frames_declared: bool
    """Whether the file states its Number of Frames (single-frame images often do not)."""
    specific_character_set: str | None
    pixel_data_offset: int | None = None
    """Where the pixel data's value starts in the file (``None``: no pixel data, or a deflated
    data set, whose offsets are not the file's): frames are read from there."""


def inspect_dicom(
    head: bytes,
    *,
    tail: bytes,
    total_size: int,
    open_body: HeaderOpener | None = None,
    limits: HeaderLimits = HeaderLimits(),
) -> DicomHeader:
    """Validate a DICOM Part 10 file from its head and tail and return its header.

    Parameters
    ----------
    head : bytes
        The first bytes of the file (all of it when the file is smaller than the head limit).
    tail : bytes
        The last bytes of the file (64, or fewer when the file is that small).
    total_size : int
        The size of the whole file in bytes.
    open_body : callable, optional
        Opens the whole (stored) file, for a header that goes on past the head. Without it
        such a header is refused as ``dicom_header_too_large``.
    limits : HeaderLimits
        How large and how busy the header may be.

    Returns
    -------
    DicomHeader
        Patient, study, series and instance attributes, with names decoded to Unicode.

    Raises
    ------
    Rejected
        ``executable`` (a program hidden in the preamble), ``malformed_dicom``, ``dicomdir``,
        ``dicom_header_too_large``, ``dicom_header_too_complex`` (too many elements, or
        sequences nested too deep), ``truncated``, ``too_large`` (a deflated data set that
        expands too much), ``invalid_uid`` or ``pixel_data_size``.
    """
    if len(head) > total_size:
        raise ValueError("head is longer than the file")
    _check_preamble(head)
    source = HeaderSource(head, total_size=total_size, open_body=open_body, limits=limits)
    with source, quiet_pydicom():
        parsed, shift = _parse(source, head, total_size)
        header = _header(parsed.dataset)
        try:
            value_at = check_pixel_data(parsed, tail)
        except Rejected:
            raise
        except Exception as exc:  # a value pydicom cannot convert, e.g. an unknown VR
            raise Rejected("malformed_dicom", MALFORMED) from exc
    if value_at is None or header.transfer_syntax_uid == DeflatedExplicitVRLittleEndian:
        return header
    return replace(header, pixel_data_offset=value_at + shift)


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
            "executable", _("This file hides a program in its DICOM header and is not accepted.")
        )
    if head[DICOM_PREAMBLE : DICOM_PREAMBLE + 4] != DICOM_MAGIC:
        raise Rejected("malformed_dicom", _("This is not a standard DICOM file."))


def _parse(source: HeaderSource, head: bytes, total_size: int) -> tuple[Parsed, int]:
    """Read the header up to the pixel data; tell a cut-off head from a cut-off file.

    Returns the parsed header and where its ``data`` starts in the file: the head (0), or, for
    a header longer than the head, a window of the file from the pixel data element on.
    """
    whole_file = source.complete
    deflated = _transfer_syntax(head) == DeflatedExplicitVRLittleEndian
    if deflated:
        _check_deflated(head, len(head) == total_size)
    try:
        dataset = dcmread(source, stop_before_pixels=True, defer_size=DEFER_BYTES)
    except Exception as exc:  # pydicom signals bad input with many exception types
        if source.refusal is not None:  # a bound, whatever pydicom made of it
            raise source.refusal from (None if exc is source.refusal else exc)
        if source.ran_out or source.tell() >= (total_size if whole_file else len(head)):
            raise cut(whole_file) from exc
        raise Rejected("malformed_dicom", MALFORMED) from exc
    source.bounded = False
    if deflated:  # pydicom read the data set from its own inflated copy
        inflated = dataset.buffer
        if not isinstance(inflated, DicomBytesIO):
            raise Rejected("malformed_dicom", MALFORMED)
        data = inflated.getvalue()
        return _after_header(Parsed(dataset, data, inflated.tell(), end=len(data)), source), 0
    stop, shift = source.tell(), 0
    data = head
    if stop + 12 > len(head) and source.complete and len(head) < total_size:
        # The header ended past the head: its pixel data is read from a window of the file.
        data, shift = source.read_at(stop, max(len(head), 64 * 1024)), stop
    parsed = Parsed(dataset, data, stop - shift, end=total_size - shift)
    return _after_header(parsed, source), shift


def _after_header(parsed: Parsed, source: HeaderSource) -> Parsed:
    """The header ends at the pixel data or at the end of the file, and nowhere else."""
    data, stop, dataset = parsed.data, parsed.stop, parsed.dataset
    whole_file = source.complete or len(data) == parsed.end
    if stop + 4 <= len(data) and _tag_at(data, stop, dataset) in _PIXEL_TAGS:
        return parsed
    if source.ran_out:
        raise cut(whole_file)
    if stop < len(data):  # reading ended early on something that is not pixel data
        raise Rejected("malformed_dicom", MALFORMED)
    if stop < parsed.end:  # the header goes on past the head
        raise cut(whole_file)
    return parsed  # a complete file without pixel data


def _meta_elements(head: bytes) -> Iterator[tuple[int, int, int]]:
    """(element, value offset, value length) of each File Meta element (explicit VR LE)."""
    pos = DICOM_PREAMBLE + 4
    while pos + 12 <= len(head) and head[pos : pos + 2] == b"\x02\x00":
        element, vr = struct.unpack_from("<H2s", head, pos + 2)
        if vr in LONG_VRS:
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
        raise cut(whole_file)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    start = _meta_end(head)
    try:
        inflated = inflater.decompress(head[start:], MAX_INFLATED + 1)
    except zlib.error as exc:
        raise Rejected("malformed_dicom", MALFORMED) from exc
    if len(inflated) > MAX_INFLATED:
        raise Rejected("too_large", _("This compressed DICOM file expands to more than we accept."))
    if not inflater.eof:
        raise Rejected("truncated", TRUNCATED)


def _meta_end(head: bytes) -> int:
    end = DICOM_PREAMBLE + 4
    for _tag, value_at, length in _meta_elements(head):
        end = value_at + length
    return end


def _tag_at(data: bytes, pos: int, dataset: Dataset) -> int:
    group, element = struct.unpack_from(endian(dataset) + "HH", data, pos)
    return int(group << 16 | element)


# -- the header ------------------------------------------------------------------------------


def _header(ds: Dataset) -> DicomHeader:
    try:
        if ds.file_meta.get("MediaStorageSOPClassUID") == MediaStorageDirectoryStorage:
            raise Rejected(
                "dicomdir",
                _(
                    "This is the index file (DICOMDIR) of an imaging CD, not an image. "
                    "Please upload the whole CD folder or a ZIP of it."
                ),
            )
        return DicomHeader(
            patient_name=text(ds, "PatientName"),
            patient_id=text(ds, "PatientID"),
            patient_birth_date=text(ds, "PatientBirthDate"),
            patient_sex=text(ds, "PatientSex"),
            study_instance_uid=_uid(ds, "StudyInstanceUID"),
            study_date=text(ds, "StudyDate"),
            study_time=text(ds, "StudyTime"),
            timezone_offset=text(ds, "TimezoneOffsetFromUTC"),
            study_id=text(ds, "StudyID"),
            referring_physician_name=text(ds, "ReferringPhysicianName"),
            study_description=text(ds, "StudyDescription"),
            accession_number=text(ds, "AccessionNumber"),
            series_instance_uid=_uid(ds, "SeriesInstanceUID"),
            modality=text(ds, "Modality"),
            body_part_examined=text(ds, "BodyPartExamined"),
            series_description=text(ds, "SeriesDescription"),
            series_number=integer(ds, "SeriesNumber"),
            series_date=text(ds, "SeriesDate"),
            series_time=text(ds, "SeriesTime"),
            sop_class_uid=_uid(ds, "SOPClassUID"),
            sop_instance_uid=_uid(ds, "SOPInstanceUID"),
            instance_number=integer(ds, "InstanceNumber"),
            transfer_syntax_uid=_uid(ds.file_meta, "TransferSyntaxUID"),
            rows=integer(ds, "Rows"),
            columns=integer(ds, "Columns"),
            bits_allocated=integer(ds, "BitsAllocated"),
            samples_per_pixel=integer(ds, "SamplesPerPixel"),
            number_of_frames=frames(ds),
            frames_declared=integer(ds, "NumberOfFrames") is not None,
            specific_character_set=text(ds, "SpecificCharacterSet"),
        )
    except Rejected:
        raise
    except Exception as exc:  # a value pydicom cannot convert, e.g. a broken sequence
        raise Rejected("malformed_dicom", MALFORMED) from exc


def _uid(ds: Dataset, keyword: str) -> str:
    value = text(ds, keyword)
    if value is None or not UID(value).is_valid:
        raise Rejected(
            "invalid_uid",
            _(
                "This DICOM file lacks a valid study, series or image identifier, so it cannot be "
                "filed with a study."
            ),
        )
    return value
