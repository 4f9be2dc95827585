"""DICOM files are checked from the head, tail and size the upload stream keeps."""

from __future__ import annotations

import io
import logging
import warnings
import zlib
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_charset_files, get_testdata_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
)

from portal.intake.dicom import MAX_INFLATED, inspect_dicom
from portal.intake.errors import Rejected
from tests.intake.uploads import TAIL, dicom_data, inspect

# Files pydicom reads without force=True that we refuse all the same, and why.
EXPECTED_REJECTIONS = {
    # deliberately broken files
    "emri_small_jpeg_2k_lossless_too_short.dcm": ("truncated", "compressed frames cut short"),
    "MR_truncated.dcm": ("truncated", "native pixel data cut short"),
    "rtplan_truncated.dcm": ("truncated", "ends inside a sequence of the header"),
    "MR_small_padded.dcm": ("pixel_data_size", "128 bytes beyond the 64x64x16-bit image"),
    "badVR.dcm": ("malformed_dicom", "Number of Frames is '1A', so the image size is unknown"),
    # fragments for reader tests: no Study / Series / SOP Instance UIDs to file them under
    "chrSQEncoding.dcm": ("invalid_uid", "character set fragment without UIDs"),
    "chrSQEncoding1.dcm": ("invalid_uid", "character set fragment without UIDs"),
    "JPEGLSNearLossless_08.dcm": ("invalid_uid", "no Study or Series Instance UID"),
    "JPEGLSNearLossless_16.dcm": ("invalid_uid", "no Study or Series Instance UID"),
    "SC_rgb_jls_lossy_line.dcm": ("invalid_uid", "no Study or Series Instance UID"),
    "SC_rgb_jls_lossy_sample.dcm": ("invalid_uid", "no Study or Series Instance UID"),
    "UN_sequence.dcm": ("invalid_uid", "sequence fragment without UIDs"),
    "empty_charset_LEI.dcm": ("invalid_uid", "fragment without UIDs"),
    "meta_missing_tsyntax.dcm": ("invalid_uid", "no Transfer Syntax UID, no UIDs"),
    "nested_priv_SQ.dcm": ("invalid_uid", "private sequence fragment without UIDs"),
    "no_meta_group_length.dcm": ("invalid_uid", "fragment without UIDs"),
    "priv_SQ.dcm": ("invalid_uid", "private sequence fragment without UIDs"),
    "bad_sequence.dcm": ("invalid_uid", "anonymised with SHA-256 hex digests in place of UIDs"),
    # image instances whose pixel data was stripped to keep the samples small
    "chrJapMulti.dcm": ("no_pixel_data", "CR image without Pixel Data"),
    "chrJapMultiExplicitIR6.dcm": ("no_pixel_data", "CR image without Pixel Data"),
    "chrKoreanMulti.dcm": ("no_pixel_data", "CR image without Pixel Data"),
}
STRIPPED_CD_IMAGES = "TINY_ALPHA"  # dicomdirtests/TINY_ALPHA/.../IM*: CT images, no Pixel Data


def _corpus() -> list[Path]:
    """Every file pydicom and pydicom-data ship that has a DICM header and reads without force."""
    paths = {Path(p) for p in [*get_testdata_files(), *get_charset_files()]}
    found = []
    for path in sorted(p for p in paths if p.is_file()):
        data = path.read_bytes()
        if data[128:132] != b"DICM":
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dcmread(io.BytesIO(data))
        except Exception:  # noqa: S112 - files pydicom refuses are not part of this corpus
            continue
        found.append(path)
    return found


CORPUS = _corpus()


def _expected(path: Path) -> str | None:
    if path.name.upper().startswith("DICOMDIR"):
        return "dicomdir"
    if STRIPPED_CD_IMAGES in path.parts and path.name.startswith("IM"):
        return "no_pixel_data"
    return EXPECTED_REJECTIONS.get(path.name, (None,))[0]


def _label(path: Path) -> str:
    return "/".join(path.parts[-2:])


ACCEPTED = [p for p in CORPUS if _expected(p) is None]
REFUSED = [p for p in CORPUS if _expected(p) is not None]


def test_the_corpus_is_the_whole_of_pydicom_test_data():
    assert len(CORPUS) >= 240
    assert len(ACCEPTED) > 150
    names = {p.name for p in CORPUS}
    assert set(EXPECTED_REJECTIONS) <= names  # the list names real files only


@pytest.mark.parametrize("path", ACCEPTED, ids=_label)
def test_valid_pydicom_files_are_accepted_with_their_identity(path):
    data = path.read_bytes()
    header = inspect(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(io.BytesIO(data))
    assert header.study_instance_uid == ds.StudyInstanceUID
    assert header.series_instance_uid == ds.SeriesInstanceUID
    assert header.sop_instance_uid == ds.SOPInstanceUID
    assert header.sop_class_uid == ds.SOPClassUID
    assert header.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID
    assert header.rows == ds.get("Rows")
    assert header.number_of_frames == int(ds.get("NumberOfFrames") or 1)


@pytest.mark.parametrize("path", REFUSED, ids=_label)
def test_broken_and_unfileable_pydicom_files_are_refused(path):
    with pytest.raises(Rejected) as refused:
        inspect(path.read_bytes())
    assert refused.value.code == _expected(path)


PIXEL_FILES = [
    p
    for p in ACCEPTED
    if b"\xe0\x7f\x10\x00" in p.read_bytes() or b"\x7f\xe0\x00\x10" in p.read_bytes()
]


def _pixel_value_start(data: bytes) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    element_at = ds.buffer.tell()
    return element_at + (12 if data[element_at + 4 : element_at + 6] in (b"OB", b"OW") else 8)


@pytest.mark.parametrize("path", [p for p in PIXEL_FILES if "dfl" not in p.name], ids=_label)
def test_every_image_cut_inside_its_pixel_data_is_refused_as_truncated(path):
    data = path.read_bytes()
    start = _pixel_value_start(data)
    cut = data[: start + (len(data) - start) // 2]
    with pytest.raises(Rejected) as refused:
        inspect(cut)
    assert refused.value.code == "truncated"


@pytest.mark.parametrize("path", ACCEPTED, ids=_label)
def test_with_a_small_head_files_are_accepted_or_their_header_is_too_large(path):
    """A 16 KiB head still validates compressed files from the tail alone."""
    data = path.read_bytes()
    try:
        inspect(data, head_limit=16 * 1024)
    except Rejected as refused:
        assert refused.code == "dicom_header_too_large"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stop = dcmread(io.BytesIO(data), stop_before_pixels=True).buffer.tell()
        assert stop + 12 > 16 * 1024 or "dfl" in path.name


def test_large_compressed_files_are_checked_from_their_tail():
    data = dicom_data("RG1_J2KR.dcm")  # 4.1 MiB of JPEG 2000 frames
    assert len(data) > 4 * 1024 * 1024
    assert inspect(data).rows == 1955
    with pytest.raises(Rejected) as refused:
        inspect(data[:-8])  # the Sequence Delimitation Item is gone
    assert refused.value.code == "truncated"


def test_large_native_files_are_checked_against_their_size():
    data = dicom_data("RG1_UNCR.dcm")  # 6.9 MiB, larger than the head
    pixel_end = _pixel_value_start(data) + 1955 * 1841 * 2
    assert inspect(data).columns == 1841
    assert inspect(data[:pixel_end]).rows == 1955  # only the trailing padding element is cut
    assert _refused(data[: pixel_end - 1]) == "truncated"


# -- synthetic files ---------------------------------------------------------------------------


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


def _refused(data: bytes, **kwargs: int) -> str:
    with pytest.raises(Rejected) as refused:
        inspect(data, **kwargs)
    assert refused.value.reason.endswith(".")
    return refused.value.code


def _set_pixel_length(data: bytes, length: int) -> bytes:
    """Rewrite the declared length of an explicit VR little endian Pixel Data element."""
    start = _pixel_value_start(data)
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
    assert _refused(data[:-2]) == "truncated"
    assert _refused(data[:-200]) == "truncated"


@pytest.mark.parametrize("delta", [-2, -1, 1, 2, 100])
def test_declared_pixel_length_must_match_the_image_size(delta):
    data = _image(rows=4, columns=4)  # 16 bytes expected
    wrong = _set_pixel_length(data, 16 + delta) + bytes(max(delta, 0))
    assert _refused(wrong) == "pixel_data_size"


def test_odd_pixel_data_may_carry_one_padding_byte_and_no_more():
    data = _image(rows=3, columns=3)  # 9 bytes, written as 10 with a padding byte
    assert inspect(data).rows == 3
    assert _refused(_set_pixel_length(data, 12) + bytes(2)) == "pixel_data_size"


def test_one_bit_pixels_are_packed():
    data = _image(rows=3, columns=5, bits=1, pixels=b"\xff\x7f")  # 15 bits in 2 bytes
    assert inspect(data).columns == 5
    assert _refused(_image(rows=3, columns=5, bits=1, pixels=b"\xff\x7f\x00\x00")) == (
        "pixel_data_size"
    )


def test_multi_frame_size_counts_every_frame():
    data = _image(rows=4, columns=4, frames=3)
    assert inspect(data).number_of_frames == 3
    assert _refused(_image(rows=4, columns=4, frames=3, pixels=bytes(32))) == "pixel_data_size"


def test_an_image_without_its_pixel_data_is_refused():
    ds = dcmread(io.BytesIO(dicom_data("CT_small.dcm")))
    del ds.PixelData
    out = io.BytesIO()
    ds.save_as(out)
    assert _refused(out.getvalue()) == "no_pixel_data"


@pytest.mark.parametrize("preamble", [b"MZ\x90\x00", b"\x7fELF\x02\x01"])
def test_executables_hidden_in_the_preamble_are_refused(preamble):
    data = preamble + dicom_data("CT_small.dcm")[len(preamble) :]
    assert _refused(data) == "executable"


def test_a_tiff_preamble_is_legitimate():
    data = b"II*\x00\x08\x00\x00\x00" + dicom_data("CT_small.dcm")[8:]
    assert inspect(data).modality == "CT"


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
    assert _refused(_image(**{keyword: value})) == "invalid_uid"


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
    assert _refused(data) == "malformed_dicom"


def test_garbage_after_the_magic_is_refused():
    # 0xFF bytes read as an element whose length runs past the end of the file
    assert _refused(bytes(128) + b"DICM" + b"\xff" * 300) == "truncated"


def test_a_preamble_and_magic_without_a_data_set_cannot_be_filed():
    assert _refused(bytes(128) + b"DICM") == "invalid_uid"


def test_a_header_longer_than_the_head_is_reported_as_such():
    data = dicom_data("CT_small.dcm")  # pixel data starts at 6288
    assert _refused(data, head_limit=3000) == "dicom_header_too_large"
    assert _refused(data[:3000]) == "truncated"  # the same bytes as a whole file


def test_a_cut_inside_the_pixel_element_header_is_not_mistaken_for_no_pixel_data():
    data = dicom_data("CT_small.dcm")
    assert _refused(data[:6294]) == "truncated"
    assert _refused(data, head_limit=6294) == "dicom_header_too_large"


def test_compressed_pixel_data_must_end_with_its_delimiter():
    data = dicom_data("JPEG2000.dcm")
    assert inspect(data).transfer_syntax_uid == "1.2.840.10008.1.2.4.91"
    assert _refused(data[:-8]) == "truncated"
    assert _refused(data[:-8], head_limit=3100) == "truncated"  # pixel data starts at 3022
    assert _refused(data[:-8] + bytes(8)) in {"truncated", "malformed_dicom"}


def test_compressed_pixel_data_may_be_followed_by_trailing_padding():
    data = dicom_data("JPEG2000.dcm")
    padded = data + b"\xfc\xff\xfc\xffOB\x00\x00" + (16).to_bytes(4, "little") + bytes(16)
    assert inspect(padded).rows == 1024
    assert inspect(padded, head_limit=3100).rows == 1024  # seen from the tail alone
    bad = data + b"\xfc\xff\xfc\xffOB\x00\x00" + (99).to_bytes(4, "little") + bytes(16)
    assert _refused(bad) == "malformed_dicom"
    assert _refused(bad, head_limit=3100) == "truncated"


def test_padding_after_compressed_data_larger_than_the_tail_is_seen_in_a_whole_file():
    data = dicom_data("MR_small_RLE.dcm")  # ends with a (FFFC,FFFC) padding element
    assert not data.endswith(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    assert inspect(data).rows == 64


def test_a_deflated_file_is_inspected_after_a_bounded_inflate():
    data = dicom_data("image_dfl.dcm")
    assert inspect(data).rows == 512
    assert _refused(data[:-100]) == "truncated"
    assert _refused(data, head_limit=1000) == "dicom_header_too_large"


def test_a_deflate_bomb_is_refused_before_pydicom_inflates_it():
    data = dicom_data("image_dfl.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    meta_end = _meta_end(data)
    squeezer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    body = b"".join(squeezer.compress(chunk) for _ in range(MAX_INFLATED // len(chunk) + 1))
    bomb = data[:meta_end] + body + squeezer.flush()
    assert len(bomb) < 200_000 and ds.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert _refused(bomb) == "too_large"


def _meta_end(data: bytes) -> int:
    group_length = int.from_bytes(data[140:144], "little")  # (0002,0000) UL
    return 144 + group_length


def test_a_dicomdir_uploaded_alone_is_explained():
    data = dicom_data("DICOMDIR")
    with pytest.raises(Rejected) as refused:
        inspect(data)
    assert refused.value.code == "dicomdir"
    assert "ZIP" in refused.value.reason


# -- what the header says ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "patient_name", "charset"),
    [
        # the sample itself mixes Cyrillic and Latin look-alikes ("ce", "yp")
        ("chrRuss.dcm", "Люкceмбypг", "ISO_IR 144"),  # noqa: RUF001
        ("chrX1.dcm", "Wang^XiaoDong=王^小東", "ISO_IR 192"),
        ("chrX2.dcm", "Wang^XiaoDong=王^小东", "GB18030"),
        ("chrH31.dcm", "Yamada^Tarou=山田^太郎=やまだ^たろう", "\\ISO 2022 IR 87"),
        ("chrI2.dcm", "Hong^Gildong=洪^吉洞=홍^길동", "\\ISO 2022 IR 149"),
        ("chrGreek.dcm", "Διονυσιος", "ISO_IR 126"),
        ("chrArab.dcm", "قباني^لنزار", "ISO_IR 127"),
        ("chrFrenMulti.dcm", "Buc^Jérôme", "ISO_IR 100"),
    ],
)
def test_names_are_decoded_with_the_specific_character_set(name, patient_name, charset):
    header = inspect(dicom_data(name))
    assert header.patient_name == patient_name
    assert header.specific_character_set == charset


def test_the_header_carries_patient_study_series_and_instance():
    header = inspect(dicom_data("CT_small.dcm"))
    assert header.patient_name == "CompressedSamples^CT1"
    assert (header.patient_id, header.patient_sex, header.study_date) == ("1CT1", "O", "20040119")
    assert (header.modality, header.series_number, header.instance_number) == ("CT", 1, 1)
    assert header.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    assert (header.rows, header.columns, header.number_of_frames) == (128, 128, 1)


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


def test_the_head_may_not_be_longer_than_the_file():
    data = dicom_data("CT_small.dcm")
    with pytest.raises(ValueError):
        inspect_dicom(data, tail=data[-TAIL:], total_size=len(data) - 1)
