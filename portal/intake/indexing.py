"""The DICOM index of a case: patient / study / series / instance, and what it says back."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import and_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, delete, select

from portal.intake.dicom import DicomHeader
from portal.intake.models import CaseFile, DicomInstance, DicomSeries, DicomStudy

Row = TypeVar("Row", bound=SQLModel)


def file_with_instance(
    *, session: Session, case_id: uuid.UUID, sop_instance_uid: str
) -> CaseFile | None:
    """The case's file holding this SOP Instance UID, if one was accepted already."""
    return session.exec(
        select(CaseFile)
        .where(CaseFile.case_id == case_id)
        .where(CaseFile.sop_instance_uid == sop_instance_uid)
    ).first()


@dataclass(frozen=True)
class Known:
    """What the index already holds for an instance: its file (if a duplicate), study, series."""

    file: CaseFile | None
    study: DicomStudy | None
    series: DicomSeries | None


def lookup(*, session: Session, case_id: uuid.UUID, header: DicomHeader) -> Known:
    """Look up an instance's file, study and series (two indexed reads, no writes)."""
    found = session.exec(
        select(DicomStudy, DicomSeries)
        .outerjoin(
            DicomSeries,
            and_(
                col(DicomSeries.study_id) == col(DicomStudy.id),
                col(DicomSeries.series_instance_uid) == header.series_instance_uid,
            ),
        )
        .where(DicomStudy.case_id == case_id)
        .where(DicomStudy.study_instance_uid == header.study_instance_uid)
    ).first()
    study, series = found if found is not None else (None, None)
    file = file_with_instance(
        session=session, case_id=case_id, sop_instance_uid=header.sop_instance_uid
    )
    return Known(file=file, study=study, series=series)


def _get_or_create(
    session: Session, find: Callable[[], Row | None], make: Callable[[], Row]
) -> Row:
    """Find a row or insert it; a concurrent insert of the same row is found, not duplicated."""
    found = find()
    if found is not None:
        return found
    try:
        with session.begin_nested():
            row = make()
            session.add(row)
        return row
    except IntegrityError:
        found = find()
        assert found is not None
        return found


def index_instance(
    *,
    session: Session,
    case_id: uuid.UUID,
    file_id: uuid.UUID,
    header: DicomHeader,
    known: Known | None = None,
) -> DicomInstance:
    """Add one instance under its study and series, creating those on first sight.

    ``known`` is what :func:`lookup` found before this transaction; rows it found are used
    as they are (their ids do not change), rows it did not find are looked up again here.
    """
    study = (known.study if known else None) or _get_or_create(
        session,
        lambda: session.exec(
            select(DicomStudy)
            .where(DicomStudy.case_id == case_id)
            .where(DicomStudy.study_instance_uid == header.study_instance_uid)
        ).first(),
        lambda: DicomStudy(
            case_id=case_id,
            study_instance_uid=header.study_instance_uid,
            study_date=_clip(header.study_date, 16),
            study_time=_clip(header.study_time, 16),
            timezone_offset=_clip(header.timezone_offset, 16),
            study_id=_clip(header.study_id, 16),
            referring_physician_name=_clip(header.referring_physician_name),
            description=_clip(header.study_description),
            accession_number=_clip(header.accession_number, 64),
            patient_name=_clip(header.patient_name),
            patient_id=_clip(header.patient_id, 64),
            patient_birth_date=_clip(header.patient_birth_date, 16),
            patient_sex=_clip(header.patient_sex, 16),
        ),
    )
    series = (known.series if known else None) or _get_or_create(
        session,
        lambda: session.exec(
            select(DicomSeries)
            .where(DicomSeries.study_id == study.id)
            .where(DicomSeries.series_instance_uid == header.series_instance_uid)
        ).first(),
        lambda: DicomSeries(
            study_id=study.id,
            series_instance_uid=header.series_instance_uid,
            modality=_clip(header.modality, 16),
            body_part_examined=_clip(header.body_part_examined, 64),
            description=_clip(header.series_description),
            series_number=header.series_number,
            series_date=_clip(header.series_date, 16),
            series_time=_clip(header.series_time, 16),
        ),
    )
    if header.modality and header.modality not in study.modalities.split(","):
        session.refresh(study)  # another upload may have added a modality since it was read
    if header.modality and header.modality not in study.modalities.split(","):
        study.modalities = ",".join(
            sorted(filter(None, [*study.modalities.split(","), header.modality]))
        )
        session.add(study)
    instance = DicomInstance(
        series_id=series.id,
        file_id=file_id,
        sop_class_uid=header.sop_class_uid,
        sop_instance_uid=header.sop_instance_uid,
        instance_number=header.instance_number,
        transfer_syntax_uid=header.transfer_syntax_uid,
        rows=header.rows,
        columns=header.columns,
        bits_allocated=header.bits_allocated,
        samples_per_pixel=header.samples_per_pixel,
        pixel_data_offset=header.pixel_data_offset,
        number_of_frames=header.number_of_frames,
        frames_declared=header.frames_declared,
    )
    session.add(instance)
    session.flush()
    return instance


def _clip(value: str | None, limit: int = 255) -> str | None:
    return value[:limit] if value else None


def drop_empty(*, session: Session, case_id: uuid.UUID, series_ids: set[uuid.UUID]) -> None:
    """Delete the series (then studies) of the case that no instance refers to any more."""
    if not series_ids:
        return
    session.exec(
        delete(DicomSeries)
        .where(col(DicomSeries.id).in_(series_ids))
        .where(~select(DicomInstance.id).where(DicomInstance.series_id == DicomSeries.id).exists())
    )
    session.exec(
        delete(DicomStudy)
        .where(col(DicomStudy.case_id) == case_id)
        .where(~select(DicomSeries.id).where(DicomSeries.study_id == DicomStudy.id).exists())
    )
