"""Response shapes of the study index."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from sqlmodel import SQLModel

from portal.intake.models import ArchiveCompleteness, ArchiveReport, DicomSeries, DicomStudy
from portal.objects.texts import CaseTexts


class SeriesPublic(SQLModel):
    id: uuid.UUID
    series_instance_uid: str
    modality: str | None
    body_part_examined: str | None
    description: str | None
    series_number: int | None
    instances: int
    frames: int
    size: int = 0
    """Bytes of the series' files as they were uploaded."""

    @classmethod
    def from_row(cls, row: DicomSeries, instances: int, frames: int, size: int = 0) -> SeriesPublic:
        return cls.model_validate(
            row, update={"instances": instances, "frames": frames, "size": size}
        )


class StudyPublic(SQLModel):
    id: uuid.UUID
    study_instance_uid: str
    study_date: str | None
    description: str | None
    accession_number: str | None
    modalities: list[str]
    patient_name: str | None
    patient_id: str | None
    patient_birth_date: str | None
    patient_sex: str | None
    series: list[SeriesPublic]

    @classmethod
    def from_row(cls, row: DicomStudy, series: list[SeriesPublic]) -> StudyPublic:
        return cls.model_validate(
            row,
            update={"modalities": [m for m in row.modalities.split(",") if m], "series": series},
        )


class IdentityPart(SQLModel):
    """One part of the identity (``family_name``, ``given_name``, ``middle_name``,
    ``birth_date``): ``match``, ``differs`` or ``not_checked`` (missing on a side)."""

    part: str
    outcome: str
    account: str | None
    scans: str | None
    """As written in the study; birth dates as DICOM dates (``YYYYMMDD``) on both sides."""


class StudyIdentityCheck(SQLModel):
    study_instance_uid: str | None = None
    study_date: str | None = None
    description: str | None = None
    mismatch: bool
    parts: list[IdentityPart]


class IdentityCheck(SQLModel):
    mismatch: bool
    account_name: str
    account_birth_date: str | None
    dicom_names: list[str]
    dicom_birth_dates: list[str]
    studies: list[StudyIdentityCheck] = []
    """Per study: which part agrees, which differs (docs/intake-validation.md)."""


class StudiesPublic(SQLModel):
    studies: list[StudyPublic]
    archives: list[ArchiveCompleteness]
    identity: IdentityCheck | None = None
    """Coordinators and specialists only: do the images belong to this account's patient?"""

    @classmethod
    def build(
        cls,
        studies: list[StudyPublic],
        reports: Sequence[ArchiveReport],
        identity: IdentityCheck | None,
        texts: CaseTexts | None,
    ) -> StudiesPublic:
        """``texts`` opens the reports' sealed names (None when the case has no reports)."""
        archives = [
            ArchiveCompleteness(
                archive=texts.open(r, "archive_name") or "",
                dicomdir_present=r.dicomdir_present,
                referenced=r.referenced,
                missing=json.loads(texts.open(r, "missing") or "[]"),
            )
            for r in reports
            if texts is not None
        ]
        return cls(studies=studies, archives=archives, identity=identity)
