"""The DICOM files both DICOMweb servers are given, and what pydicom reads in them.

Named files from pydicom and pydicom-data (never downloaded), chosen for what they exercise,
plus one instance made here so that a study has two series of two modalities.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import SecondaryCaptureImageStorage

from tests.portal.samples import dicom_path

SAMPLES: dict[str, str] = {
    "CT_small.dcm": "CT, ISO_IR 100, one 128x128 frame",
    "MR_small.dcm": "MR without Specific Character Set",
    "emri_small.dcm": "MR, 10 frames, empty Patient's Name",
    "US1_J2KR.dcm": "US, RGB, JPEG 2000 lossless",
    "explicit_VR-UN.dcm": "CT, JPEG 2000, attributes written with VR UN",
    "liver.dcm": "SEG, 3 one-bit frames, nested sequences",
    "chrX1.dcm": "ISO_IR 192: Patient's Name with ideographic (Chinese) components",
    "chrRuss.dcm": "ISO_IR 144: Cyrillic Patient's Name",
    "chrH31.dcm": "ISO 2022 IR 87: Japanese name in three component groups",
}
# A second series in CT_small's study: a secondary capture of the same slice.
DERIVED_NAME = "CT_small-secondary-capture.dcm"


def sample_files(folder: Path) -> list[Path]:
    """The named samples, and the derived instance written into ``folder``."""
    paths = [dicom_path(name) for name in SAMPLES]
    folder.mkdir(parents=True, exist_ok=True)
    derived = folder / DERIVED_NAME
    if not derived.exists():
        ds = pydicom.dcmread(dicom_path("CT_small.dcm"))
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.SeriesInstanceUID = pydicom.uid.generate_uid()
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "OT", 2, 1
        ds.SeriesDescription = "Secondary capture of the CT slice"
        ds.save_as(derived, enforce_file_format=True)
    return [*paths, derived]


def file_json(path: Path) -> dict[str, Any]:
    """The file's dataset as DICOM JSON, as pydicom reads it; bulk data as a BulkDataURI."""
    return dict(_read_json(path))


@functools.cache
def _read_json(path: Path) -> dict[str, Any]:
    ds = pydicom.dcmread(path)
    return dict(ds.to_json_dict(bulk_data_threshold=1024, bulk_data_element_handler=_bulk_uri))


def _bulk_uri(element: Any) -> str:
    return f"file:bulk/{element.tag:08X}"


class Catalogue:
    """What a DICOMweb server holding exactly these files should answer about each resource.

    A reference object is the DICOM JSON of an instance of the resource as pydicom reads it,
    with the attributes a server works out itself: counts, Modalities in Study, Instance
    Availability (ONLINE: all is stored) and the Retrieve URL path from ``studies/`` on.
    """

    def __init__(self, files: list[Path]) -> None:
        self.files = {uids(path): path for path in files}
        self.studies = sorted({study for study, _, _ in self.files})
        self.series = sorted({series for _, series, _ in self.files})
        self.instances = sorted({sop for _, _, sop in self.files})

    def searches(self) -> list[tuple[str, str, str]]:
        """Every QIDO-RS search to make: (target, path under the DICOMweb root, unique key)."""
        found = [
            ("studies", "/studies", "0020000D"),
            ("series", "/series", "0020000E"),
            ("instances", "/instances", "00080018"),
        ]
        found += [("study series", f"/studies/{s}/series", "0020000E") for s in self.studies]
        found += [
            ("series instances", f"/studies/{study}/series/{series}/instances", "00080018")
            for study, series in sorted({(study, series) for study, series, _ in self.files})
        ]
        return found

    def metadata(self) -> list[tuple[str, str]]:
        """Every WADO-RS metadata resource: (path under the DICOMweb root, level)."""
        found = [(f"/studies/{study}/metadata", "study") for study in self.studies]
        found += [
            (f"/studies/{study}/series/{series}/metadata", "series")
            for study, series in sorted({(study, series) for study, series, _ in self.files})
        ]
        found += [
            (f"/studies/{study}/series/{series}/instances/{sop}/metadata", "instance")
            for study, series, sop in sorted(self.files)
        ]
        return found

    def path(self, sop: str) -> Path:
        return next(path for (_, _, uid), path in self.files.items() if uid == sop)

    def location(self, uid: str) -> tuple[str, str, str]:
        """The (study, series, SOP instance) UIDs of the first instance under ``uid``."""
        return next(key for key in sorted(self.files) if uid in key)

    def reference(self, uid: str) -> dict[str, Any]:
        """The reference object for the study, series or instance with this UID."""
        study, series, sop = self.location(uid)
        path = f"studies/{study}"
        if uid != study:
            path += f"/series/{series}"
        if uid == sop:
            path += f"/instances/{sop}"
        in_study = [key for key in self.files if key[0] == study]
        in_series = [key for key in in_study if key[1] == series]
        modalities = sorted(
            {str(file_json(self.files[key])["00080060"]["Value"][0]) for key in in_study}
        )
        return {
            **file_json(self.files[(study, series, sop)]),
            "00080056": {"vr": "CS", "Value": ["ONLINE"]},
            "00080061": {"vr": "CS", "Value": modalities},
            "00081190": {"vr": "UR", "Value": [path]},
            "00201206": {"vr": "IS", "Value": [len({key[1] for key in in_study})]},
            "00201208": {"vr": "IS", "Value": [len(in_study)]},
            "00201209": {"vr": "IS", "Value": [len(in_series)]},
        }


def uids(path: Path) -> tuple[str, str, str]:
    """Study, series and SOP instance UIDs of a file."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
