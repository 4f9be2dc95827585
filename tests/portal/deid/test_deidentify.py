"""De-identification of real instances: every attribute of the table, UIDs, dates, pixels.

Files from pydicom's test data and pydicom-data (``download=False``: the wheel ships them).
Each test prints how many attributes of the actions table it checked in each file.
"""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from portal.deid import DeidOptions, action_table, deidentify, deidentify_file
from portal.deid.keys import date_offset_days
from tests.portal.deid.checks import Report, check, find, values

CASE_KEY = bytes(range(32))
OTHER_CASE_KEY = bytes(range(100, 132))
REFERENCE = "SO-2026-0042"

PYDICOM_FILES = [
    "CT_small.dcm",  # private tags
    "MR_small.dcm",
    "JPEG2000.dcm",  # compressed pixel data
    "rtplan.dcm",  # nested sequences referencing a structure set
    "rtstruct.dcm",  # contours referencing CT images
    "rtdose.dcm",
    "SC_rgb_small_odd.dcm",  # secondary capture
    "test-SR.dcm",  # structured report: content sequence
    "waveform_ecg.dcm",
    "examples_overlay.dcm",  # overlay data (60xx,3000)
    "nested_priv_SQ.dcm",  # private sequences inside sequences
    "JPEG-lossy.dcm",
    "ExplVR_BigEnd.dcm",  # big endian
]
DATA_FILES = [  # pydicom-data
    "US1_J2KR.dcm",  # ultrasound, JPEG 2000
    "MR-SIEMENS-DICOM-WithOverlays.dcm",  # Siemens private CSA headers, overlays
    "eCT_Supplemental.dcm",  # enhanced CT: functional groups
    "emri_small.dcm",  # enhanced MR
    "OT-PAL-8-face.dcm",  # OT, palette colour
    "color3d_jpeg_baseline.dcm",  # US multi-frame, JPEG
]
ALL_FILES = PYDICOM_FILES + DATA_FILES
PRIVATE_ONLY = {"nested_priv_SQ.dcm"}  # no standard attribute but private ones


def load(name: str) -> Dataset:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.fail(f"{name} is not installed (pydicom or pydicom-data)")
    return dcmread(path, force=True)


def series_files() -> list[Path]:
    """Two MR instances of one series (pydicom's DICOMDIR test set)."""
    root = Path(str(get_testdata_file("CT_small.dcm"))).parent / "dicomdirtests/98892003/MR700"
    return sorted(root.iterdir())[:2]


def identifying_words(dataset: Dataset) -> list[str]:
    """The patient's name parts, ID and birth date as the file holds them."""
    words = [
        part
        for name in values(dataset.get("PatientName"))
        for part in name.replace("=", "^").replace(" ", "^").split("^")
        if len(part) >= 3
    ]
    words += [value for value in values(dataset.get("PatientID")) if len(value) >= 3]
    words += values(dataset.get("PatientBirthDate"))
    return words


@pytest.mark.parametrize("name", ALL_FILES)
def test_every_table_attribute_follows_its_action(name: str):
    original = load(name)
    output = deidentify(original, case_key=CASE_KEY, reference=REFERENCE)
    report = check(
        original,
        output,
        action_table(),
        days=date_offset_days(CASE_KEY),
        identifying=identifying_words(original),
        reference=REFERENCE,
    )
    print(f"\n{name}: {report.checked} table attributes checked {dict(report.counts)}")
    assert not report.failures, "\n".join(report.failures)
    if name not in PRIVATE_ONLY:
        assert report.checked >= 5, "a file this test reads should carry table attributes"


@pytest.mark.parametrize("name", ALL_FILES)
def test_the_file_names_nobody_and_keeps_its_pixels(name: str):
    original = load(name)
    data = Path(str(get_testdata_file(name, download=False))).read_bytes()
    if name in PRIVATE_ONLY:  # no SOP Class or Instance UID: not a file we could write
        with pytest.raises(ValueError, match="SOP"):
            deidentify_file(data, case_key=CASE_KEY, reference=REFERENCE)
        output = deidentify(original, case_key=CASE_KEY, reference=REFERENCE)
        assert not [element.tag for element in _all_elements(output) if element.tag.is_private]
        return
    written = deidentify_file(data, case_key=CASE_KEY, reference=REFERENCE)
    again = dcmread(io.BytesIO(written))

    assert again.PatientName == REFERENCE and again.PatientID == REFERENCE
    assert again.PatientIdentityRemoved == "YES"
    assert again.file_meta.MediaStorageSOPInstanceUID == again.SOPInstanceUID
    assert again.SOPInstanceUID != original.SOPInstanceUID
    codes = {item.CodeValue for item in again.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113107", "113105", "113109"}
    assert not [element.tag for element in _all_elements(again) if element.tag.is_private]

    text_part = written
    if "PixelData" in original:
        assert again.PixelData == original.PixelData  # byte for byte, compressed or not
        text_part = written.replace(original.PixelData, b"")
        if "TransferSyntaxUID" in getattr(original, "file_meta", {}):
            assert again.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    for word in identifying_words(original):
        assert word.encode() not in text_part, f"{word!r} is still in {name}"


def test_two_instances_of_a_series_stay_one_series():
    first, second = (dcmread(path) for path in series_files())
    assert first.SeriesInstanceUID == second.SeriesInstanceUID
    reference = Dataset()  # the second image names the first, as a localizer's lines do
    reference.ReferencedSOPClassUID = first.SOPClassUID
    reference.ReferencedSOPInstanceUID = first.SOPInstanceUID
    second.ReferencedImageSequence = [reference]
    one, two = (deidentify(ds, case_key=CASE_KEY, reference=REFERENCE) for ds in (first, second))

    assert two.ReferencedImageSequence[0].ReferencedSOPInstanceUID == one.SOPInstanceUID
    assert two.ReferencedImageSequence[0].ReferencedSOPClassUID == first.SOPClassUID

    assert one.SeriesInstanceUID == two.SeriesInstanceUID != first.SeriesInstanceUID
    assert one.StudyInstanceUID == two.StudyInstanceUID != first.StudyInstanceUID
    assert one.SOPInstanceUID != two.SOPInstanceUID
    if "FrameOfReferenceUID" in first:
        assert one.FrameOfReferenceUID == two.FrameOfReferenceUID
    assert one.StudyDate == two.StudyDate != first.StudyDate

    elsewhere = deidentify(first, case_key=OTHER_CASE_KEY, reference=REFERENCE)
    assert elsewhere.SeriesInstanceUID != one.SeriesInstanceUID  # another case, other UIDs


def test_references_inside_sequences_map_like_the_instances_they_name():
    """A structure set's ROIs name its frame of reference; a plan names its structure set."""
    table = action_table()
    report = Report()
    outputs = {}
    for name in ("rtstruct.dcm", "rtplan.dcm", "rtdose.dcm", "CT_small.dcm", "test-SR.dcm"):
        original = load(name)
        outputs[name] = deidentify(original, case_key=CASE_KEY, reference=REFERENCE)
        check(original, outputs[name], table, days=0, identifying=[], report=report)
    assert not [failure for failure in report.failures if "mapped to" in failure]
    assert len(set(report.uid_map.values())) == len(report.uid_map)  # no two UIDs merged

    struct, out_struct = load("rtstruct.dcm"), outputs["rtstruct.dcm"]
    frame = struct.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID
    assert struct.StructureSetROISequence[0].ReferencedFrameOfReferenceUID == frame
    new_frame = out_struct.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID
    assert new_frame == report.uid_map[frame] != frame
    assert out_struct.StructureSetROISequence[0].ReferencedFrameOfReferenceUID == new_frame
    study = out_struct.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
    series_uid = study.RTReferencedSeriesSequence[0].SeriesInstanceUID
    original_study = struct.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
    original_series = original_study.RTReferencedSeriesSequence[0].SeriesInstanceUID
    assert series_uid == report.uid_map[original_series] != original_series

    plan = load("rtplan.dcm")
    plan_ref = plan.ReferencedStructureSetSequence[0].ReferencedSOPInstanceUID
    out_plan = outputs["rtplan.dcm"].ReferencedStructureSetSequence[0]
    assert out_plan.ReferencedSOPInstanceUID == report.uid_map[plan_ref] != plan_ref


@pytest.mark.parametrize("name", ["CT_small.dcm", "rtplan.dcm", "test-SR.dcm", "emri_small.dcm"])
def test_all_dates_move_by_one_number_of_days(name: str):
    original = load(name)
    offsets = []
    for key in (CASE_KEY, OTHER_CASE_KEY):
        output = deidentify(original, case_key=key, reference=REFERENCE)
        moves = set()
        for path, element in _dated(original):
            new = find(output, path, element.tag)
            assert new is not None, f"{element.keyword} at {path} was dropped"
            for old_value, new_value in zip(values(element), values(new), strict=True):
                moves.add(_days_between(old_value, new_value))
        assert len(moves) == 1, moves  # every date of the instance, listed in the table or not
        offsets.append(moves.pop())
        assert output.LongitudinalTemporalInformationModified == "MODIFIED"
    assert all(-3653 <= offset <= -366 for offset in offsets)
    assert offsets[0] != offsets[1]  # another case, another offset


def test_a_reports_words_are_replaced_and_its_structure_kept():
    """Text Value is not in Table E.1-1: the Content Sequence (D) is, so its words go."""
    original = load("test-SR.dcm")
    output = deidentify(original, case_key=CASE_KEY, reference=REFERENCE)
    before = [element for element in _all_elements(original) if element.keyword == "TextValue"]
    after = [element for element in _all_elements(output) if element.keyword == "TextValue"]
    assert len(before) == len(after) >= 5
    assert {element.value for element in after} == {"ANONYMIZED"}

    def concepts(report: Dataset) -> list[str]:
        content = Dataset()
        content.ContentSequence = report.ContentSequence
        return [e.value for e in _all_elements(content) if e.keyword == "CodeMeaning"]

    assert len(concepts(original)) > 10
    assert concepts(output) == concepts(original)  # every coded concept is still in its place


def test_descriptors_lose_names_found_anywhere_in_the_instance():
    original = load("CT_small.dcm")
    operator = Dataset()
    operator.PersonName = "Kuznetsova^Olga"
    original.OperatorIdentificationSequence = [operator]
    original.SeriesDescription = "Olga Kuznetsova T2 AX"
    output = deidentify(original, case_key=CASE_KEY, reference=REFERENCE)
    assert output.SeriesDescription == "T2 AX"
    assert output.OperatorIdentificationSequence[0].PersonName == "ANONYMIZED"


def test_the_original_is_not_changed():
    original = load("CT_small.dcm")
    before = original.to_json_dict()
    deidentify(original, case_key=CASE_KEY, reference=REFERENCE)
    assert original.to_json_dict() == before


def test_without_options_the_basic_profile_alone_applies():
    original = load("CT_small.dcm")
    original.SeriesDescription = "AX T2 Smith"
    basic = DeidOptions(
        retain_modified_dates=False, clean_descriptors=False, retain_device_identity=False
    )
    output = deidentify(original, case_key=CASE_KEY, reference=REFERENCE, options=basic)
    assert "SeriesDescription" not in output  # X without Clean Descriptors
    assert values(output["StudyDate"]) == []  # Z without Modified Dates
    assert output.LongitudinalTemporalInformationModified == "REMOVED"
    assert [item.CodeValue for item in output.DeidentificationMethodCodeSequence] == ["113100"]
    if "StationName" in original:
        assert values(output["StationName"]) == []  # X/Z/D without Retain Device Identity


def test_a_bad_reference_or_key_is_refused():
    original = load("CT_small.dcm")
    with pytest.raises(ValueError, match="reference"):
        deidentify(original, case_key=CASE_KEY, reference="a\\b")
    with pytest.raises(ValueError, match="case key"):
        deidentify(original, case_key=b"short", reference=REFERENCE)


def _all_elements(dataset: Dataset):
    for element in dataset:
        yield element
        if element.VR == "SQ":
            for item in element.value:
                yield from _all_elements(item)


def _dated(dataset: Dataset, path=()):
    for element in dataset:
        if element.tag.is_private:
            continue
        dated = element.VR in ("DA", "DT") and element.keyword != "PatientBirthDate"
        if dated and values(element) and all(len(v.strip()) >= 8 for v in values(element)):
            yield path, element
        if element.VR == "SQ":
            for index, item in enumerate(element.value):
                yield from _dated(item, (*path, (int(element.tag), index)))


def _days_between(old: str, new: str) -> int:
    old = old.strip()
    if len(old) == 10 and old[4] == ".":  # ACR-NEMA YYYY.MM.DD
        old = old.replace(".", "")
    assert new[8:] == old[8:], "the time of day and the UTC offset stay"
    return (_day(new) - _day(old)).days


def _day(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
