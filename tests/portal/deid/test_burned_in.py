"""Flagging images whose pixels may name the patient, and cleaning descriptors."""

from __future__ import annotations

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from portal import i18n
from portal.deid import burned_in, burned_in_risk
from portal.deid.descriptors import identifying_text


def load(name: str) -> Dataset:
    return dcmread(get_testdata_file(name, download=False), force=True)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("US1_J2KR.dcm", burned_in.ULTRASOUND),
        ("color3d_jpeg_baseline.dcm", burned_in.ULTRASOUND),  # US multi-frame
        ("SC_rgb_small_odd.dcm", burned_in.SECONDARY_CAPTURE),
        ("OT-PAL-8-face.dcm", burned_in.SECONDARY_CAPTURE),  # SC class, modality OT
        ("JPEG2000.dcm", burned_in.SECONDARY_CAPTURE),  # SC class, modality NM
        ("MR_small.dcm", burned_in.DERIVED),  # DERIVED\SECONDARY\OTHER
        ("CT_small.dcm", None),
        ("rtdose.dcm", None),
    ],
)
def test_real_files(name: str, reason: str | None):
    assert burned_in_risk(load(name)) == reason


def test_what_the_image_says_of_itself_comes_first():
    ct = load("CT_small.dcm")
    ct.BurnedInAnnotation = "YES"
    assert burned_in_risk(ct) == burned_in.BURNED_IN
    ct.BurnedInAnnotation = "NO"
    ct.RecognizableVisualFeatures = "YES"
    assert burned_in_risk(ct) == burned_in.FACE


@pytest.mark.parametrize(
    "image_type",
    [["DERIVED", "SECONDARY", "SCREEN SAVE"], ["ORIGINAL", "PRIMARY", "SCREENSHOT"]],
)
def test_screen_captures(image_type: list[str]):
    ct = load("CT_small.dcm")
    ct.ImageType = image_type
    assert burned_in_risk(ct) == burned_in.SCREEN


def test_derived_secondary_and_documents():
    ct = load("CT_small.dcm")
    ct.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    assert burned_in_risk(ct) == burned_in.DERIVED
    ct.ImageType = ["DERIVED", "PRIMARY", "AXIAL"]
    assert burned_in_risk(ct) is None
    ct.Modality = "OT"
    assert burned_in_risk(ct) == burned_in.OTHER
    document = Dataset()
    document.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"
    assert burned_in_risk(document) == burned_in.DOCUMENT
    multiframe_sc = Dataset()
    multiframe_sc.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.4"
    assert burned_in_risk(multiframe_sc) == burned_in.SECONDARY_CAPTURE


def test_reasons_are_translated():
    with i18n.speaking("ru"):
        assert i18n.gettext(burned_in.ULTRASOUND) != burned_in.ULTRASOUND


def test_descriptors_lose_what_identifies_and_keep_the_rest():
    dataset = Dataset()
    dataset.PatientName = "Ivanova^Anna Maria"
    dataset.PatientID = "MRN-4411"
    dataset.PatientBirthDate = "19800201"
    dataset.InstitutionName = "Clinic of St. Anna"
    cleaner = identifying_text(dataset)
    assert cleaner.clean("MRT LWS T2 SAG IVANOVA 01.02.1980") == "MRT LWS T2 SAG"
    assert cleaner.clean("mrn-4411 CT THORAX KM") == "CT THORAX KM"
    assert cleaner.clean("Annapurna T1") == "Annapurna T1"  # whole words only
    assert cleaner.clean("Clinic of St. Anna: DWI b1000") == "DWI b1000"
    assert cleaner.clean("CALL +7 916 123-45-67") == "CALL"
    assert cleaner.clean("20240101123456") is None
    assert cleaner.clean("Anna Maria") is None
