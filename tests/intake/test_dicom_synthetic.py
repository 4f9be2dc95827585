"""DICOM checks on images built for one case: sizes, byte orders, UIDs, non-DICOM bytes.

Real sample files are swept in ``test_dicom.py``.
"""

from __future__ import annotations

import io
import logging
import warnings

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
)

from portal.intake.errors import Rejected
from tests.intake.uploads import dicom_data, inspect, pixel_value_start, refused_code


def _image(
    *,
    rows: int = 4,
    columns: int = 4,
    bits: int = 8,
    samples: int = 1,
    frames: int | None = None,
    pixels: bytes | None = None,
    syntax: UID = ExplicitVRLittleEndian,
    **attributes: object,
) -> bytes:
    """A small Secondary Capture image written by pydicom (invalid values on purpose)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("pydicom").disabled = True
        try:
            return _build_image(rows, columns, bits, samples, frames, pixels, syntax, attributes)
        finally:
            logging.getLogger("pydicom").disabled = False


def _build_image(
    rows: int,
    columns: int,
    bits: int,
    samples: int,
    frames: int | None,
    pixels: bytes | None,
    syntax: UID,
    attributes: dict[str, object],
) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.3"
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.3"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    ds.PatientName = "Test^Patient"
    ds.Modality = "OT"
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.SamplesPerPixel = rows, columns, bits, samples
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2" if samples == 1 else "RGB"
    if frames is not None:
        ds.NumberOfFrames = frames
    for keyword, value in attributes.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    size = rows * columns * samples * (frames or 1) * max(bits // 8, 1)
    ds.PixelData = (
        pixels if pixels is not None else bytes(range(256)) * (size // 256) + bytes(size % 256)
    )
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _set_pixel_length(data: bytes, length: int) -> bytes:
    """Rewrite the declared length of an explicit VR little endian Pixel Data element."""
    start = pixel_value_start(data)
    return data[: start - 4] + length.to_bytes(4, "little") + data[start:]


def test_a_synthetic_image_is_accepted():
    header = inspect(_image())
    assert (header.rows, header.columns, header.number_of_frames) == (4, 4, 1)
    assert header.modality == "OT"


@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian]
)
def test_native_pixel_data_cut_short_is_truncated_in_every_byte_order(syntax):
    data = _image(rows=16, columns=16, bits=16, syntax=syntax)
    assert inspect(data).columns == 16
    assert refused_code(data[:-2]) == "truncated"
    assert refused_code(data[:-200]) == "truncated"


@pytest.mark.parametrize("delta", [-2, -1, 1, 2, 100])
def test_declared_pixel_length_must_match_the_image_size(delta):
    data = _image(rows=4, columns=4)  # 16 bytes expected
    wrong = _set_pixel_length(data, 16 + delta) + bytes(max(delta, 0))
    assert refused_code(wrong) == "pixel_data_size"


def test_odd_pixel_data_may_carry_one_padding_byte_and_no_more():
    data = _image(rows=3, columns=3)  # 9 bytes, written as 10 with a padding byte
    assert inspect(data).rows == 3
    assert refused_code(_set_pixel_length(data, 12) + bytes(2)) == "pixel_data_size"


def test_one_bit_pixels_are_packed():
    data = _image(rows=3, columns=5, bits=1, pixels=b"\xff\x7f")  # 15 bits in 2 bytes
    assert inspect(data).columns == 5
    assert refused_code(_image(rows=3, columns=5, bits=1, pixels=b"\xff\x7f\x00\x00")) == (
        "pixel_data_size"
    )


def test_multi_frame_size_counts_every_frame():
    data = _image(rows=4, columns=4, frames=3)
    assert inspect(data).number_of_frames == 3
    assert refused_code(_image(rows=4, columns=4, frames=3, pixels=bytes(32))) == "pixel_data_size"


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("StudyInstanceUID", "1.2.abc"),
        ("SeriesInstanceUID", "1.02.3"),
        ("SOPInstanceUID", "1.2." + "3" * 70),
        ("SOPInstanceUID", None),
        ("SOPClassUID", None),
        ("StudyInstanceUID", ""),
    ],
)
def test_missing_or_invalid_uids_are_refused(keyword, value):
    assert refused_code(_image(**{keyword: value})) == "invalid_uid"


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.4\n" + bytes(200),
        bytes(100),
        b"II*\x00" + bytes(124) + b"DICN" + bytes(64),
    ],
    ids=["pdf", "too-short", "no-magic"],
)
def test_non_dicom_bytes_are_malformed(data):
    assert refused_code(data) == "malformed_dicom"


def test_garbage_after_the_magic_is_refused():
    # 0xFF bytes read as an element whose length runs past the end of the file
    assert refused_code(bytes(128) + b"DICM" + b"\xff" * 300) == "truncated"


def test_a_preamble_and_magic_without_a_data_set_cannot_be_filed():
    assert refused_code(bytes(128) + b"DICM") == "invalid_uid"


def test_absent_or_empty_attributes_are_none_not_empty_strings():
    header = inspect(_image(PatientName="", AccessionNumber="", StudyDate=None))
    assert header.patient_name is None and header.accession_number is None
    assert header.study_date is None and header.patient_id is None
    assert header.series_number is None and header.specific_character_set is None


def test_inspection_logs_and_warns_nothing_and_restores_warning_filters(caplog):
    caplog.set_level(logging.DEBUG)
    filters_before = list(warnings.filters)
    data = _image(SeriesInstanceUID="1.2.abc", PatientID="ID\x01WITH CONTROL")
    caplog.clear()
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with pytest.raises(Rejected):
            inspect(data)
        inspect(dicom_data("chrX1.dcm"))
    assert shown == []
    assert caplog.records == []
    assert warnings.filters == filters_before
