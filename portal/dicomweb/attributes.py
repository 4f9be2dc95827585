"""The attributes the study index holds, as QIDO-RS matches and returns them (PS3.18 10.6).

Each attribute names its tag, value representation, level and the index column holding it.
Values are written as the DICOM JSON model (PS3.18 Annex F).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from sqlalchemy import ColumnElement
from sqlalchemy.orm import InstrumentedAttribute

from portal.intake.models import DicomInstance, DicomSeries, DicomStudy


class Level(IntEnum):
    study = 1
    series = 2
    instance = 3


@dataclass(frozen=True)
class Attribute:
    tag: str
    """Eight upper-case hex digits, as DICOM JSON keys them."""
    keyword: str
    vr: str
    level: Level
    column: InstrumentedAttribute[Any] | None
    """Where the index keeps it; ``None``: computed (counts, modalities, URLs)."""

    @property
    def matchable(self) -> bool:
        return self.column is not None or self.keyword == "ModalitiesInStudy"


def _attr(keyword: str, level: Level, column: Any = None) -> Attribute:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return Attribute(f"{tag:08X}", keyword, dictionary_VR(tag), level, column)


ATTRIBUTES: tuple[Attribute, ...] = (
    _attr("StudyInstanceUID", Level.study, DicomStudy.study_instance_uid),
    _attr("StudyDate", Level.study, DicomStudy.study_date),
    _attr("StudyTime", Level.study, DicomStudy.study_time),
    _attr("TimezoneOffsetFromUTC", Level.study, DicomStudy.timezone_offset),
    _attr("AccessionNumber", Level.study, DicomStudy.accession_number),
    _attr("ModalitiesInStudy", Level.study),
    _attr("ReferringPhysicianName", Level.study, DicomStudy.referring_physician_name),
    _attr("StudyDescription", Level.study, DicomStudy.description),
    _attr("PatientName", Level.study, DicomStudy.patient_name),
    _attr("PatientID", Level.study, DicomStudy.patient_id),
    _attr("PatientBirthDate", Level.study, DicomStudy.patient_birth_date),
    _attr("PatientSex", Level.study, DicomStudy.patient_sex),
    _attr("StudyID", Level.study, DicomStudy.study_id),
    _attr("NumberOfStudyRelatedSeries", Level.study),
    _attr("NumberOfStudyRelatedInstances", Level.study),
    _attr("SeriesInstanceUID", Level.series, DicomSeries.series_instance_uid),
    _attr("Modality", Level.series, DicomSeries.modality),
    _attr("SeriesDescription", Level.series, DicomSeries.description),
    _attr("SeriesNumber", Level.series, DicomSeries.series_number),
    _attr("SeriesDate", Level.series, DicomSeries.series_date),
    _attr("SeriesTime", Level.series, DicomSeries.series_time),
    _attr("BodyPartExamined", Level.series, DicomSeries.body_part_examined),
    _attr("NumberOfSeriesRelatedInstances", Level.series),
    _attr("SOPClassUID", Level.instance, DicomInstance.sop_class_uid),
    _attr("SOPInstanceUID", Level.instance, DicomInstance.sop_instance_uid),
    _attr("InstanceNumber", Level.instance, DicomInstance.instance_number),
    _attr("Rows", Level.instance, DicomInstance.rows),
    _attr("Columns", Level.instance, DicomInstance.columns),
    _attr("BitsAllocated", Level.instance, DicomInstance.bits_allocated),
    _attr("NumberOfFrames", Level.instance, DicomInstance.number_of_frames),
)
BY_TAG = {a.tag: a for a in ATTRIBUTES}
BY_KEYWORD = {a.keyword: a for a in ATTRIBUTES}
INSTANCE_AVAILABILITY = _attr("InstanceAvailability", Level.study)
RETRIEVE_URL = _attr("RetrieveURL", Level.study)


def sql_column(attribute: Any) -> ColumnElement[Any]:
    """A model attribute as the SQL column it is (nullable ones type poorly in SQLModel)."""
    column: ColumnElement[Any] = attribute
    return column


def resolve(key: str) -> tuple[str, str] | None:
    """``(tag, keyword)`` of a query key given as a keyword or eight hex digits, or ``None``."""
    if len(key) == 8:
        try:
            tag = int(key, 16)
        except ValueError:
            pass
        else:
            keyword = keyword_for_tag(tag)
            return f"{tag:08X}", keyword or key.upper()
    tag_number = tag_for_keyword(key)
    if tag_number is None:
        return None
    return f"{tag_number:08X}", key


# -- DICOM JSON values ------------------------------------------------------------------------


def person_name(value: str) -> dict[str, str]:
    """A PN value as DICOM JSON: its alphabetic, ideographic and phonetic groups."""
    groups = value.split("=")
    names = ("Alphabetic", "Ideographic", "Phonetic")
    return {name: group for name, group in zip(names, groups, strict=False) if group}


def _multi(value: str) -> list[str]:
    return [part for part in value.split("\\")]


_CONVERT: dict[str, Callable[[Any], list[Any]]] = {
    "PN": lambda v: [person_name(str(v))],
    "IS": lambda v: [int(v)],
    "US": lambda v: [int(v)],
    "UL": lambda v: [int(v)],
    "SS": lambda v: [int(v)],
    "SL": lambda v: [int(v)],
    "CS": lambda v: _multi(str(v)),
}


def element(attribute: Attribute, value: Any) -> dict[str, Any]:
    """``{"vr": …, "Value": [...]}``, or just the VR when the value is empty (PS3.18 F.2.5)."""
    if value is None or value == "" or value == []:
        return {"vr": attribute.vr}
    if isinstance(value, list):
        return {"vr": attribute.vr, "Value": value}
    convert = _CONVERT.get(attribute.vr, lambda v: [v])
    return {"vr": attribute.vr, "Value": convert(value)}
