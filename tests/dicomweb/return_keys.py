"""What a QIDO-RS answer must hold for each matching resource: PS3.18 (2024 on) 10.6.3.3.

Tags are the eight-digit hex names DICOM JSON uses (PS3.18 F.2.2); each maps to its
Query/Retrieve attribute type (PS3.4 C.2.2.1): ``R`` required (returned, empty when unknown),
``U`` the unique key, ``C`` conditional ("shall be present if known", or for Retrieve URL "if
the resource is retrievable by the Retrieve transaction").
"""

from __future__ import annotations

from typing import Final, Literal

KeyType = Literal["R", "U", "C"]

# Table 10.6.3-3, Studies Search Response Payload.
STUDY: Final[dict[str, KeyType]] = {
    "00080020": "R",  # StudyDate
    "00080030": "R",  # StudyTime
    "00080050": "R",  # AccessionNumber
    "00080056": "C",  # InstanceAvailability
    "00080061": "R",  # ModalitiesInStudy
    "00080090": "R",  # ReferringPhysicianName
    "00080201": "C",  # TimezoneOffsetFromUTC
    "00081190": "C",  # RetrieveURL
    "00100010": "R",  # PatientName
    "00100020": "R",  # PatientID
    "00100030": "R",  # PatientBirthDate
    "00100040": "R",  # PatientSex
    "0020000D": "U",  # StudyInstanceUID
    "00200010": "R",  # StudyID
    "00201206": "R",  # NumberOfStudyRelatedSeries
    "00201208": "R",  # NumberOfStudyRelatedInstances
}

# Table 10.6.3-4, Series Resources Search Response Payload.
SERIES: Final[dict[str, KeyType]] = {
    "00080060": "R",  # Modality
    "00080201": "C",  # TimezoneOffsetFromUTC
    "0008103E": "C",  # SeriesDescription
    "00081190": "C",  # RetrieveURL
    "0020000E": "U",  # SeriesInstanceUID
    "00200011": "R",  # SeriesNumber
    "00201209": "R",  # NumberOfSeriesRelatedInstances
    "00400244": "C",  # PerformedProcedureStepStartDate
    "00400245": "C",  # PerformedProcedureStepStartTime
    "00400275": "C",  # RequestAttributesSequence
    # whose items hold >ScheduledProcedureStepID (00400009) and >RequestedProcedureID
    # (00401001), both C; the items are compared whole.
}

# Table 10.6.3-5, Instance Resources Search Response Payload.
INSTANCE: Final[dict[str, KeyType]] = {
    "00080016": "R",  # SOPClassUID
    "00080018": "U",  # SOPInstanceUID
    "00080056": "C",  # InstanceAvailability
    "00080201": "C",  # TimezoneOffsetFromUTC
    "00081190": "R",  # RetrieveURL (present when the instance is retrievable, as here)
    "00200013": "R",  # InstanceNumber
    "00280010": "C",  # Rows
    "00280011": "C",  # Columns
    "00280100": "C",  # BitsAllocated
    "00280008": "C",  # NumberOfFrames
}

# Attributes a server works out from what it stores rather than reads from one instance;
# a file's own dataset has no value to compare them with.
COMPUTED: Final[frozenset[str]] = frozenset(
    {
        "00080056",  # InstanceAvailability
        "00080061",  # ModalitiesInStudy
        "00081190",  # RetrieveURL
        "00201206",  # NumberOfStudyRelatedSeries
        "00201208",  # NumberOfStudyRelatedInstances
        "00201209",  # NumberOfSeriesRelatedInstances
    }
)


def search_keys(target: str) -> dict[str, KeyType]:
    """The return keys for one Search transaction, by its target resource.

    ``studies``, ``study series`` (/studies/{s}/series), ``series`` (all series: with the study
    keys, 10.6.3.3.2), ``series instances`` (/studies/{s}/series/{se}/instances), ``study
    instances`` (with the series keys) and ``instances`` (all instances: with the study and the
    series keys, 10.6.3.3.3).
    """
    levels: dict[str, tuple[dict[str, KeyType], ...]] = {
        "studies": (STUDY,),
        "study series": (SERIES,),
        "series": (STUDY, SERIES),
        "series instances": (INSTANCE,),
        "study instances": (SERIES, INSTANCE),
        "instances": (STUDY, SERIES, INSTANCE),
    }
    keys: dict[str, KeyType] = {}
    for table in levels[target]:
        keys.update(table)
    return keys
