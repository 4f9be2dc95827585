"""The DICOM JSON comparison: what it lets differ, and what it must report."""

from __future__ import annotations

from typing import Any

from tests.dicomweb.compare import against_reference, compare_dicom_json, malformed

PATIENT_NAME, RETRIEVE_URL = "00100010", "00081190"


def attr(vr: str, *values: Any, **other: Any) -> dict[str, Any]:
    return {"vr": vr, **({"Value": list(values)} if values else {}), **other}


def differs(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    return compare_dicom_json(ours, theirs, set(ours) | set(theirs))


def test_person_names_compare_by_component_group():
    name = attr("PN", {"Alphabetic": "Wang^XiaoDong", "Ideographic": "王^小東"})
    padded = attr("PN", {"Alphabetic": "Wang^XiaoDong^^", "Ideographic": "王^小東", "Phonetic": ""})
    assert differs({PATIENT_NAME: name}, {PATIENT_NAME: padded}) == []
    lost = attr("PN", {"Alphabetic": "Wang^XiaoDong", "Ideographic": "^"})
    assert differs({PATIENT_NAME: name}, {PATIENT_NAME: lost})
    bare = attr("PN", "Wang^XiaoDong")
    assert differs(
        {PATIENT_NAME: attr("PN", {"Alphabetic": "Wang^XiaoDong"})}, {PATIENT_NAME: bare}
    )


def test_numeric_strings_compare_as_numbers():
    assert differs({"00200013": attr("IS", "1")}, {"00200013": attr("IS", 1)}) == []
    assert differs({"00280030": attr("DS", "0.50", 2)}, {"00280030": attr("DS", 0.5, "2.0")}) == []
    assert differs({"00200013": attr("IS", 2)}, {"00200013": attr("IS", 1)})


def test_bulk_data_is_compared_for_presence_and_its_vr_class():
    pixels = {"7FE00010": attr("OW", BulkDataURI="http://a/frames")}
    assert differs(pixels, {"7FE00010": attr("OB", BulkDataURI="http://b/bulk/7FE00010")}) == []
    assert differs(pixels, {"7FE00010": attr("UN", InlineBinary="AAAA")}) == []
    assert differs(pixels, {}) == [
        "PixelData (7FE00010): missing in theirs (ours has OW BulkDataURI 'http://a/frames')"
    ]
    assert differs({"00280010": attr("US", 512)}, {"00280010": attr("OB", InlineBinary="AAI=")})
    inline = {"00091001": attr("OB", InlineBinary="AAE=")}
    assert differs(inline, {"00091001": attr("UN", InlineBinary="AAI=")})


def test_retrieve_urls_compare_by_resource_path():
    ours = {RETRIEVE_URL: attr("UR", "http://127.0.0.1:8000/api/cases/7/dicomweb/studies/1.2")}
    assert (
        differs(ours, {RETRIEVE_URL: attr("UR", "http://127.0.0.1:8042/dicom-web/studies/1.2")})
        == []
    )
    assert differs(ours, {RETRIEVE_URL: attr("UR", "http://127.0.0.1:8042/dicom-web/studies/1.3")})


def test_empty_padding_and_order_that_carry_no_meaning():
    assert differs({"00080050": attr("SH")}, {"00080050": attr("SH", "")}) == []
    assert differs({"00080050": attr("SH", None)}, {"00080050": {"vr": "SH", "Value": []}}) == []
    assert differs({"00080060": attr("CS", "CT ")}, {"00080060": attr("CS", "CT")}) == []
    modalities = {"00080061": attr("CS", "CT", "OT")}
    assert differs(modalities, {"00080061": attr("CS", "OT", "CT")}) == []
    charset = {"00080005": attr("CS", None, "ISO 2022 IR 87")}
    assert differs(charset, {"00080005": attr("CS", "ISO 2022 IR 87")})


def test_sequences_are_compared_item_by_item():
    item = {"00400009": attr("SH", "SPS1"), "00401001": attr("SH", "RP1")}
    ours = {"00400275": attr("SQ", item)}
    assert differs(ours, {"00400275": attr("SQ", dict(item))}) == []
    other = {**item, "00401001": attr("SH", "RP2")}
    (found,) = differs(ours, {"00400275": attr("SQ", other)})
    assert "item 1 > RequestedProcedureID" in found


def test_vr_differences_outside_the_allowed_classes_are_reported():
    assert differs({"00280106": attr("US", 0)}, {"00280106": attr("SS", 0)}) == []  # US or SS
    assert differs({"00080020": attr("DA", "20240101")}, {"00080020": attr("DT", "20240101")})
    assert (
        differs({"00091010": attr("LO", "x")}, {"00091010": attr("UN", InlineBinary="eA==")}) == []
    )


def test_answers_are_held_to_the_required_keys():
    reference = {"0020000D": attr("UI", "1.2"), "00080020": attr("DA", "20240101")}
    keys = {"0020000D": "U", "00080020": "R", "00080050": "R", "00080201": "C"}
    answer = {
        "00080020": attr("DA", "20240101"),
        "00080050": attr("SH"),
        "0020000D": attr("UI", "1.2"),
    }
    assert against_reference(answer, reference, keys) == []
    found = against_reference({"0020000D": attr("UI", "1.2")}, reference, keys)
    assert [difference.tag for difference in found] == ["00080020", "00080050"]
    invented = {**answer, "00080201": attr("SH", "+0100")}
    assert [d.tag for d in against_reference(invented, reference, keys)] == ["00080201"]


def test_malformed_json_is_reported():
    assert malformed({"00080020": attr("DA"), "00100010": attr("PN", {"Alphabetic": "A"})}) == []
    assert malformed({"00100010": attr("PN"), "00080020": attr("DA")})
    assert malformed({"00100010": attr("PN", {"Alphabetic": "A", "Phonetic": ""})})
    assert malformed({"00100010": attr("PN", "A^B")})
    assert malformed({"00080020": attr("XX")})
    assert malformed({"00080020": attr("DA", "2024", BulkDataURI="x")})
