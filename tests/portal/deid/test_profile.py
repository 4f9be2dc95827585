"""The actions table: its rows, our option columns, and every row applied to one instance."""

from __future__ import annotations

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from portal.deid import Action, DeidOptions, action_table, deidentify, profile
from portal.deid.keys import date_offset_days, new_uid, purpose_key
from tests.portal.deid.checks import check

CASE_KEY = bytes(range(32))

SAMPLES: dict[str, object] = {
    "AE": "WARD3PC",
    "AS": "045Y",
    "AT": 0x00100010,
    "CS": "LEFT",
    "DA": "19990612",
    "DS": "1.5",
    "DT": "19990612101500",
    "FD": 1.5,
    "FL": 1.5,
    "IS": "7",
    "LO": "Ivanova Anna 4411",
    "LT": "Seen by Dr Petrov",
    "OB": b"\x01\x02",
    "OD": bytes(8),
    "OF": bytes(4),
    "OL": bytes(4),
    "OV": bytes(8),
    "OW": b"\x01\x02",
    "PN": "Ivanova^Anna",
    "SH": "IVANOVA A",
    "SL": 1,
    "SS": 1,
    "ST": "Anna Ivanova",
    "SV": 1,
    "TM": "101500",
    "UC": "Anna",
    "UI": "1.2.826.0.1.3680043.9.1234.7",
    "UL": 1,
    "UN": b"\x01\x02",
    "UR": "http://hospital.example/anna",
    "US": 1,
    "UT": "Anna Ivanova, 12 Lenin st.",
    "UV": 1,
}


def every_table_row() -> Dataset:
    """CT_small with one element for every row of the table (repeating groups at 60xx/50xx)."""
    dataset = dcmread(get_testdata_file("CT_small.dcm"))
    codes, masked = profile.basic_profile_codes()
    for tag in codes:
        if tag.group == 0x0002:
            continue  # file meta: checked with the file (test_deidentify)
        dataset.add(_element(tag))
    for row in masked:
        dataset.add(_element(Tag(row.group, row.element or 0x0010)))
    dataset.PatientName = "Ivanova^Anna"
    return dataset


def _element(tag: Tag) -> DataElement:
    try:
        vr = str(dictionary_VR(tag)).split(" or ")[0]
    except KeyError:
        vr = "UN"  # a row newer than pydicom's dictionary
    if vr == "SQ":
        item = Dataset()
        item.CodeValue = "T-D1100"
        item.CodingSchemeDesignator = "SRT"
        item.CodeMeaning = "Head"
        item.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.9.1234.8"
        return DataElement(tag, "SQ", Sequence([item]))
    return DataElement(tag, vr, SAMPLES[vr])


def test_every_row_of_the_table_on_one_instance():
    original = every_table_row()
    output = deidentify(original, case_key=CASE_KEY, reference="SO-1")
    report = check(
        original,
        output,
        action_table(),
        days=date_offset_days(CASE_KEY),
        identifying=["Ivanova", "Anna"],
        reference="SO-1",
    )
    codes, masked = profile.basic_profile_codes()
    print(f"\nall rows: {report.checked} attributes checked {dict(report.counts)}")
    assert not report.failures, "\n".join(report.failures)
    assert report.checked >= len(codes) + len(masked) - 2  # all but the two file meta rows


def test_the_basic_column_is_the_standards_size_and_known_to_pydicom():
    codes, masked = profile.basic_profile_codes()
    assert len(codes) + len(masked) >= 650
    assert {row.code for row in masked} == {"X"}  # curves, overlay data and comments
    assert set(codes.values()) == {"X", "Z", "D", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}


def test_every_option_row_is_a_row_of_the_basic_column():
    codes, _ = profile.basic_profile_codes()
    for text in (profile.CLEAN_DESCRIPTORS, profile.DEVICE_KEEP, profile.DEVICE_CLEAN):
        for keyword in text.split():
            assert Tag(tag_for_keyword(keyword)) in codes, keyword
    assert len(profile.CLEAN_DESCRIPTORS.split()) == 125
    assert len(profile.DEVICE_KEEP.split()) + len(profile.DEVICE_CLEAN.split()) == 57


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        ("PatientName", Action.EMPTY),  # Z
        ("PatientBirthDate", Action.EMPTY),  # Z, not shifted: no option retains it
        ("PatientAge", Action.REMOVE),  # X (Retain Patient Characteristics is not chosen)
        ("StudyDate", Action.SHIFT_DATE),  # Z, C with Modified Dates
        ("AcquisitionDateTime", Action.SHIFT_DATE),  # X/Z/D, C
        ("SOPInstanceUID", Action.REPLACE_UID),
        ("ReferencedImageSequence", Action.REPLACE_UID),  # X/Z/U*
        ("InstitutionName", Action.EMPTY),  # X/Z/D: Z where allowed
        ("ProtocolName", Action.CLEAN),  # X/D, C
        ("SeriesDescription", Action.CLEAN),  # X, C
        ("AdditionalPatientHistory", Action.REMOVE),  # LT: free text is not cleaned
        ("Occupation", Action.REMOVE),  # about the patient as a person
        ("DeviceSerialNumber", Action.KEEP),  # X/Z/D, K with Retain Device Identity
        ("StationName", Action.KEEP),
        ("DateOfLastCalibration", Action.SHIFT_DATE),  # K for the device, C for dates
        ("StationAETitle", Action.REMOVE),  # C for the device: an AE title is not cleaned
        ("OperatorsName", Action.EMPTY),
        ("AccessionNumber", Action.EMPTY),
    ],
)
def test_spot_rows_against_the_standard(keyword: str, expected: Action):
    assert action_table().action_for(Tag(tag_for_keyword(keyword))) is expected


def test_overlay_rows_match_any_overlay_group():
    table = action_table()
    assert table.action_for(Tag(0x6002, 0x3000)) is Action.REMOVE
    assert table.action_for(Tag(0x6002, 0x0010)) is None  # overlay rows (size) stay


def test_new_uids_and_the_offset_never_change():
    """Already exported instances must keep matching: the mapping is fixed for good."""
    uid_key = purpose_key(CASE_KEY, "uid")
    assert new_uid("1.2.840.113619.2.1.1.1", uid_key=uid_key) == new_uid(
        "1.2.840.113619.2.1.1.1\0", uid_key=uid_key
    )
    assert new_uid("1.2.3", uid_key=uid_key) == GOLDEN_UID
    assert date_offset_days(CASE_KEY) == GOLDEN_OFFSET
    assert date_offset_days(bytes(range(1, 33))) != GOLDEN_OFFSET


def test_options_are_one_table_each():
    assert action_table(DeidOptions()) is action_table(DeidOptions())
    basic = action_table(DeidOptions(False, False, False))
    assert Action.CLEAN not in basic.actions.values()
    assert Action.SHIFT_DATE not in basic.actions.values()
    assert Action.KEEP not in basic.actions.values()


GOLDEN_UID = "2.25.317799591376261058857264774557873638829"
GOLDEN_OFFSET = -2308
