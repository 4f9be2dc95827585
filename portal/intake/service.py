"""Uploading into a case, listing and reading its files, and its study index."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from sqlalchemy import func
from sqlmodel import Session, col, select

from portal import access, pagination
from portal.access import Principal
from portal.accounts.models import User
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.cases.models import Case, CaseStatus
from portal.db import begin_read_only
from portal.errors import Conflict, NotFound
from portal.i18n import _
from portal.intake import identity
from portal.intake.models import (
    ArchiveReport,
    CaseFile,
    CaseFilePublic,
    DicomInstance,
    DicomSeries,
    DicomStudy,
)
from portal.intake.schemas import (
    IdentityCheck,
    IdentityPart,
    SeriesPublic,
    StudiesPublic,
    StudyIdentityCheck,
    StudyPublic,
)
from portal.intake.sniff import FileKind
from portal.objects import service as objects_service
from portal.objects import texts
from portal.objects.models import StoredObject
from portal.pagination import PageRequest
from storage.vault import Vault

UPLOAD_STATUSES = frozenset({CaseStatus.draft, CaseStatus.info_requested})


def case_for_upload(*, session: Session, principal: Principal, case_id: uuid.UUID) -> Case:
    """The owner's case, if it accepts files now (while a draft, or when asked for more)."""
    begin_read_only(session)  # checked on every upload: it must not take SQLite's write lock
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.files.add"
    )
    if case.status not in UPLOAD_STATUSES:
        raise Conflict(
            _("Files can be added while the case is a draft or when the specialist asks for more.")
        )
    session.commit()
    return case


OLDEST_FIRST = (col(CaseFile.created_at), col(CaseFile.id))


def list_files(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    case_id: uuid.UUID,
    page: PageRequest | None = None,
) -> tuple[list[CaseFile], str | None]:
    """The case's files in the order they arrived: one page, or all of them (``page=None``,
    for the case page), and the cursor after them."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.content.read"
    )
    query = select(CaseFile).where(CaseFile.case_id == case.id)
    if page is None:
        files, next_cursor = list(session.exec(query.order_by(*OLDEST_FIRST)).all()), None
    else:
        rows = session.exec(pagination.after(query, OLDEST_FIRST, page)).all()
        files, next_cursor = pagination.cut(rows, page, lambda item: (item.created_at, item.id))
    audit_service.record_read(
        session=session, ctx=ctx, action="file.list", case_id=case.id, details={"count": len(files)}
    )
    session.commit()
    return files, next_cursor


@dataclass(frozen=True)
class FileOverview:
    """The case page's view of the files: records by name, DICOM files by study and series
    (counted, not listed: a CT is hundreds of them)."""

    records: list[CaseFilePublic]
    studies: StudiesPublic

    @property
    def dicom_files(self) -> int:
        """Each DICOM file is indexed as one instance, in the transaction that stores it."""
        return sum(item.instances for study in self.studies.studies for item in study.series)

    @property
    def dicom_bytes(self) -> int:
        return sum(item.size for study in self.studies.studies for item in study.series)


def file_overview(
    *, session: Session, principal: Principal, ctx: AuditContext, case_id: uuid.UUID
) -> FileOverview:
    """Records (PDFs, photos) oldest first with their names; the studies with their series."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.content.read"
    )
    records = list_records(session=session, case_id=case.id)
    found = studies(session=session, principal=principal, ctx=ctx, case_id=case.id)
    overview = FileOverview(describe_files(session=session, files=records), found)
    audit_service.record_read(
        session=session,
        ctx=ctx,
        action="file.list",
        case_id=case.id,
        details={"count": len(records) + overview.dicom_files},
    )
    session.commit()
    return overview


def list_records(*, session: Session, case_id: uuid.UUID) -> list[CaseFile]:
    """The case's records (PDFs, photos: every file that is not DICOM), oldest first. The
    caller has checked that its caller may read the case's content."""
    return list(
        session.exec(
            select(CaseFile)
            .where(CaseFile.case_id == case_id)
            .where(CaseFile.kind != FileKind.dicom.value)
            .order_by(*OLDEST_FIRST)
        ).all()
    )


def describe_files(*, session: Session, files: Sequence[CaseFile]) -> list[CaseFilePublic]:
    """The files as the API and pages show them, names opened with their case's key."""
    sealers = texts.for_cases(session=session, case_ids=[item.case_id for item in files])
    return [
        CaseFilePublic.model_validate(
            item, update={"filename": sealers[item.case_id].open(item, "filename") or ""}
        )
        for item in files
    ]


def file_name(*, session: Session, case_file: CaseFile) -> str:
    """The name the patient's computer gave the file, in clear."""
    sealer = texts.for_case(session=session, case_id=case_file.case_id)
    return sealer.open(case_file, "filename") or ""


def open_file(
    *,
    session: Session,
    vault: Vault,
    principal: Principal,
    ctx: AuditContext,
    case_id: uuid.UUID,
    file_id: uuid.UUID,
) -> tuple[CaseFile, Iterator[bytes]]:
    """The original bytes of a file (verified against their SHA-256 as they stream); audited."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.content.read"
    )
    case_file = session.exec(
        select(CaseFile).where(CaseFile.id == file_id).where(CaseFile.case_id == case.id)
    ).first()
    if case_file is None:
        raise NotFound(_("File not found."))
    stored = session.get(StoredObject, case_file.stored_object_id)
    assert stored is not None
    chunks = objects_service.open_object(session=session, vault=vault, row=stored)
    audit_service.record(
        session=session,
        ctx=ctx,
        action="file.download",
        entity_type="file",
        entity_id=case_file.id,
        case_id=case.id,
    )
    session.commit()  # the stream below runs outside any transaction
    return case_file, chunks


def studies(
    *, session: Session, principal: Principal, ctx: AuditContext, case_id: uuid.UUID
) -> StudiesPublic:
    """Studies → series → instance counts, with the identity check for staff."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.images.read"
    )
    study_rows = _study_rows(session, case.id)
    public = _with_series(session, study_rows)
    reports = session.exec(select(ArchiveReport).where(ArchiveReport.case_id == case.id)).all()
    identity = (
        identity_check(_account_identity(session, case.patient_id), study_rows)
        if access.permits(
            session=session, principal=principal, case=case, action="case.identity.check"
        )
        else None
    )
    audit_service.record_read(
        session=session,
        ctx=ctx,
        action="study.list",
        case_id=case.id,
        details={"studies": len(public)},
    )
    session.commit()
    sealer = texts.for_case(session=session, case_id=case.id) if reports else None
    return StudiesPublic.build(public, reports, identity, sealer)


def study_index(*, session: Session, case_id: uuid.UUID) -> list[StudyPublic]:
    """The case's studies → series → instance counts, as ``studies`` lists them (without the
    identity check and the archive reports). The caller has checked that its caller may read
    the case's content, and audits the reading."""
    return _with_series(session, _study_rows(session, case_id))


def _study_rows(session: Session, case_id: uuid.UUID) -> Sequence[DicomStudy]:
    return session.exec(
        select(DicomStudy).where(DicomStudy.case_id == case_id).order_by(col(DicomStudy.study_date))
    ).all()


def _with_series(session: Session, study_rows: Sequence[DicomStudy]) -> list[StudyPublic]:
    series_rows = _series_with_totals(session, [s.id for s in study_rows])
    return [
        StudyPublic.from_row(
            study,
            [
                SeriesPublic.from_row(series, count, frames, size)
                for series, count, frames, size in series_rows
                if series.study_id == study.id
            ],
        )
        for study in study_rows
    ]


def _series_with_totals(
    session: Session, study_ids: list[uuid.UUID]
) -> list[tuple[DicomSeries, int, int, int]]:
    """The studies' series by number, each with its instances, frames and bytes summed by the
    database (a series may hold thousands of instances), in one query."""
    if not study_ids:
        return []
    rows = session.exec(
        select(
            DicomSeries,
            func.count(col(DicomInstance.id)),
            func.sum(DicomInstance.number_of_frames),
            func.sum(CaseFile.size),
        )
        .join(DicomInstance, col(DicomInstance.series_id) == col(DicomSeries.id), isouter=True)
        .join(CaseFile, col(CaseFile.id) == col(DicomInstance.file_id), isouter=True)
        .where(col(DicomSeries.study_id).in_(study_ids))
        .group_by(col(DicomSeries.id))
        .order_by(col(DicomSeries.series_number))
    ).all()
    return [
        (series, int(count), int(frames or 0), int(size or 0))
        for series, count, frames, size in rows
    ]


@dataclass(frozen=True)
class _Account:
    full_name: str
    date_of_birth: date | None


def _account_identity(session: Session, user_id: uuid.UUID) -> _Account:
    """The name and birth date the patient's account gives (the columns the check reads)."""
    full_name, born = session.exec(
        select(User.full_name, col(User.date_of_birth)).where(User.id == user_id)
    ).one()
    return _Account(full_name, born)


def study_uids_by_case(
    *, session: Session, case_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[str]]:
    """The Study Instance UIDs of each case, oldest study first (one query for all)."""
    rows = session.exec(
        select(DicomStudy.case_id, DicomStudy.study_instance_uid)
        .where(col(DicomStudy.case_id).in_(list(case_ids)))
        .order_by(col(DicomStudy.study_date), col(DicomStudy.study_instance_uid))
    ).all()
    found: dict[uuid.UUID, list[str]] = {}
    for case_id, study_uid in rows:
        found.setdefault(case_id, []).append(study_uid)
    return found


class StudyIdentity(Protocol):
    """Who a study names (a study row, or just these columns of it)."""

    @property
    def patient_name(self) -> str | None: ...

    @property
    def patient_birth_date(self) -> str | None: ...


class AccountIdentity(Protocol):
    """Who an account says its holder is (a user row, or just these columns of it)."""

    @property
    def full_name(self) -> str: ...

    @property
    def date_of_birth(self) -> date | None: ...


def identity_check(patient: AccountIdentity, study_rows: Sequence[StudyIdentity]) -> IdentityCheck:
    """Whether each study's patient name and birth date agree with the account, part by part.

    The one authority for the question: the case page shows its parts, the coordinators'
    dashboard flags a case by its ``mismatch``.
    """
    studies = []
    for study in study_rows:
        checks = identity.check_study(
            patient.full_name,
            patient.date_of_birth,
            study.patient_name,
            study.patient_birth_date,
        )
        studies.append(
            StudyIdentityCheck(
                study_instance_uid=getattr(study, "study_instance_uid", None),
                study_date=getattr(study, "study_date", None),
                description=getattr(study, "description", None),
                mismatch=identity.differs(checks),
                parts=[
                    IdentityPart(
                        part=c.part.value, outcome=c.outcome.value, account=c.account, scans=c.scans
                    )
                    for c in checks
                ],
            )
        )
    return IdentityCheck(
        mismatch=any(study.mismatch for study in studies),
        account_name=patient.full_name,
        account_birth_date=(
            patient.date_of_birth.strftime("%Y%m%d") if patient.date_of_birth else None
        ),
        dicom_names=sorted({s.patient_name for s in study_rows if s.patient_name}),
        dicom_birth_dates=sorted(
            {s.patient_birth_date for s in study_rows if s.patient_birth_date}
        ),
        studies=studies,
    )
