"""Controlled vocabularies for specialists: what they practise and which images they read.

Values are stable identifiers stored in the database and sent over the API; labels are what
people read (in explanations, the coordinator dashboard and e-mails).
"""

from __future__ import annotations

from enum import StrEnum


class Specialty(StrEnum):
    neuroradiology = "neuroradiology"
    musculoskeletal_radiology = "musculoskeletal_radiology"
    body_radiology = "body_radiology"
    cardiothoracic_radiology = "cardiothoracic_radiology"
    breast_imaging = "breast_imaging"
    interventional_radiology = "interventional_radiology"
    nuclear_medicine = "nuclear_medicine"
    spine_surgery = "spine_surgery"
    neurosurgery = "neurosurgery"
    orthopaedics = "orthopaedics"
    oncology = "oncology"
    radiation_oncology = "radiation_oncology"
    cardiology = "cardiology"
    neurology = "neurology"
    pulmonology = "pulmonology"
    gastroenterology = "gastroenterology"
    urology = "urology"
    gynaecology = "gynaecology"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


MODALITIES: dict[str, str] = {
    "MR": "MRI",
    "CT": "CT",
    "CR": "X-ray (CR)",
    "DX": "X-ray (DX)",
    "XA": "angiography",
    "US": "ultrasound",
    "MG": "mammography",
    "PT": "PET",
    "NM": "nuclear medicine",
    "RF": "fluoroscopy",
    "OT": "other",
}
"""DICOM Modality (0008,0060) codes a specialist may declare, with their readable names."""
