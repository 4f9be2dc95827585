"""DICOM files are checked from the head, tail and size the upload stream keeps.

These tests run on real files: every sample pydicom and pydicom-data ship, swept as a whole,
and particular samples damaged or disguised. Images built for one case are in
``test_dicom_synthetic.py``.
"""

from __future__ import annotations

import io
import warnings
import zlib
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_charset_files, get_testdata_files
from pydicom.uid import DeflatedExplicitVRLittleEndian

from portal.intake.dicom import MAX_INFLATED, inspect_dicom
from portal.intake.errors import Rejected
from tests.intake.uploads import TAIL, dicom_data, inspect, pixel_value_start, refused_code

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


@pytest.mark.parametrize("path", [p for p in PIXEL_FILES if "dfl" not in p.name], ids=_label)
def test_every_image_cut_inside_its_pixel_data_is_refused_as_truncated(path):
    data = path.read_bytes()
    start = pixel_value_start(data)
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
    pixel_end = pixel_value_start(data) + 1955 * 1841 * 2
    assert inspect(data).columns == 1841
    assert inspect(data[:pixel_end]).rows == 1955  # only the trailing padding element is cut
    assert refused_code(data[: pixel_end - 1]) == "truncated"


# -- damaged, disguised and unusual real files ------------------------------------------------


def test_an_image_without_its_pixel_data_is_refused():
    ds = dcmread(io.BytesIO(dicom_data("CT_small.dcm")))
    del ds.PixelData
    out = io.BytesIO()
    ds.save_as(out)
    assert refused_code(out.getvalue()) == "no_pixel_data"


@pytest.mark.parametrize("preamble", [b"MZ\x90\x00", b"\x7fELF\x02\x01"])
def test_executables_hidden_in_the_preamble_are_refused(preamble):
    data = preamble + dicom_data("CT_small.dcm")[len(preamble) :]
    assert refused_code(data) == "executable"


def test_a_tiff_preamble_is_legitimate():
    data = b"II*\x00\x08\x00\x00\x00" + dicom_data("CT_small.dcm")[8:]
    assert inspect(data).modality == "CT"


def test_a_header_longer_than_the_head_is_reported_as_such():
    data = dicom_data("CT_small.dcm")  # pixel data starts at 6288
    assert refused_code(data, head_limit=3000) == "dicom_header_too_large"
    assert refused_code(data[:3000]) == "truncated"  # the same bytes as a whole file


def test_a_cut_inside_the_pixel_element_header_is_not_mistaken_for_no_pixel_data():
    data = dicom_data("CT_small.dcm")
    assert refused_code(data[:6294]) == "truncated"
    assert refused_code(data, head_limit=6294) == "dicom_header_too_large"


def test_compressed_pixel_data_must_end_with_its_delimiter():
    data = dicom_data("JPEG2000.dcm")
    assert inspect(data).transfer_syntax_uid == "1.2.840.10008.1.2.4.91"
    assert refused_code(data[:-8]) == "truncated"
    assert refused_code(data[:-8], head_limit=3100) == "truncated"  # pixel data starts at 3022
    assert refused_code(data[:-8] + bytes(8)) in {"truncated", "malformed_dicom"}


def test_compressed_pixel_data_may_be_followed_by_trailing_padding():
    data = dicom_data("JPEG2000.dcm")
    padded = data + b"\xfc\xff\xfc\xffOB\x00\x00" + (16).to_bytes(4, "little") + bytes(16)
    assert inspect(padded).rows == 1024
    assert inspect(padded, head_limit=3100).rows == 1024  # seen from the tail alone
    bad = data + b"\xfc\xff\xfc\xffOB\x00\x00" + (99).to_bytes(4, "little") + bytes(16)
    assert refused_code(bad) == "malformed_dicom"
    assert refused_code(bad, head_limit=3100) == "truncated"


def test_padding_after_compressed_data_larger_than_the_tail_is_seen_in_a_whole_file():
    data = dicom_data("MR_small_RLE.dcm")  # ends with a (FFFC,FFFC) padding element
    assert not data.endswith(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    assert inspect(data).rows == 64


def test_a_deflated_file_is_inspected_after_a_bounded_inflate():
    data = dicom_data("image_dfl.dcm")
    assert inspect(data).rows == 512
    assert refused_code(data[:-100]) == "truncated"
    assert refused_code(data, head_limit=1000) == "dicom_header_too_large"


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
    assert refused_code(bomb) == "too_large"


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
        ("chrRuss.dcm", "Люкceмбypг", "ISO_IR 144"),
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


def test_the_head_may_not_be_longer_than_the_file():
    data = dicom_data("CT_small.dcm")
    with pytest.raises(ValueError):
        inspect_dicom(data, tail=data[-TAIL:], total_size=len(data) - 1)
