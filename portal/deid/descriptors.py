"""Cleaning short descriptors (Clean Descriptors option, PS3.15 E.3.5).

A study or series description ("MRT LWS T2 SAG", "CT THORAX KM") is what a specialist
navigates by, so it is kept, but with what would identify the patient taken out: every word
of the patient's names, their IDs, accession number, birth date in the ways people write it,
the names of the institution and its staff (all read from the instance itself before it is
de-identified), dates of any form, numbers of five or more digits (record numbers, dates
without separators) and international phone numbers. What is left is kept when it still
holds a letter or a digit; otherwise the attribute takes the Basic Profile's action.

This cannot find a name the instance does not carry elsewhere; that is why free text (LT, ST,
UT) and descriptions of the patient as a person are not cleaned but removed (see
portal/deid/profile.py, PATIENT_NARRATIVE).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

NAME_KEYWORDS = (
    "PatientName",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord",
    "OperatorsName",
    "RequestingPhysician",
)
"""Person names: each of their words is identifying on its own."""

PHRASE_KEYWORDS = (
    "PatientID",
    "OtherPatientIDs",
    "IssuerOfPatientID",
    "AccessionNumber",
    "StudyID",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "MilitaryRank",
    "BranchOfService",
)
"""Identifiers and names of places: identifying as a whole."""

_DATE_LIKE = re.compile(r"\b\d{1,4}[./-]\d{1,2}[./-]\d{1,4}\b")
_LONG_NUMBER = re.compile(r"\d{5,}")
_PHONE = re.compile(r"\+\d[\d\s().-]{6,}\d")
_SEPARATORS = " \t-_,;:/|.^"
_MIN_WORD = 2


@dataclass(frozen=True)
class IdentifyingText:
    """What must not survive in a cleaned descriptor of one instance."""

    patterns: tuple[re.Pattern[str], ...]

    def clean(self, text: str) -> str | None:
        """``text`` without anything identifying; None when nothing meaningful is left."""
        cleaned = text
        for pattern in (*self.patterns, _PHONE, _DATE_LIKE, _LONG_NUMBER):
            cleaned = pattern.sub(" ", cleaned)
        cleaned = " ".join(cleaned.split()).strip(_SEPARATORS)
        return cleaned if any(char.isalnum() for char in cleaned) else None


def identifying_text(dataset: Dataset) -> IdentifyingText:
    """Collect the names, IDs and birth date ``dataset`` carries, before it is changed.

    Every person name at any depth counts (an operator named in a sequence item, a verifying
    observer of a report), as do the identifiers and places of :data:`PHRASE_KEYWORDS`.
    """
    phrases: set[str] = set()
    for element in _all_elements(dataset):
        keyword = element.keyword or ""
        if element.VR == "PN" or keyword in NAME_KEYWORDS:
            for value in _values(element.value):
                phrases.update(word for word in re.split(r"[\s^=,]+", value) if word)
        elif keyword in PHRASE_KEYWORDS:
            phrases.update(_values(element.value))
        elif keyword == "PatientBirthDate":
            for value in _values(element.value):
                phrases.update(_birth_date_forms(value))
    usable = sorted((p.strip() for p in phrases if len(p.strip()) >= _MIN_WORD), key=len)
    patterns = tuple(
        re.compile(rf"(?<!\w){re.escape(phrase)}(?!\w)", re.IGNORECASE)
        for phrase in reversed(usable)  # longest first, so "Anna Maria" goes before "Anna"
    )
    return IdentifyingText(patterns)


def _all_elements(dataset: Dataset) -> Iterator[DataElement]:
    for element in dataset:
        if element.tag.is_private:
            continue
        yield element
        if element.VR == "SQ":
            for item in element.value:
                yield from _all_elements(item)


def _values(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    items: Iterable[object] = value if isinstance(value, (list, tuple, MultiValue)) else [value]
    return tuple(text for text in (str(item).strip() for item in items) if text)


def _birth_date_forms(value: str) -> set[str]:
    match = re.fullmatch(r"(\d{4})\.?(\d{2})\.?(\d{2})", value.strip())
    if match is None:
        return {value}
    year, month, day = match.groups()
    return {
        f"{year}{month}{day}",
        f"{year}-{month}-{day}",
        f"{year}.{month}.{day}",
        f"{day}.{month}.{year}",
        f"{day}/{month}/{year}",
        f"{month}/{day}/{year}",
        f"{day}-{month}-{year}",
    }
