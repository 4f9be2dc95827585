"""Erasing a case: crypto-shred its data key, delete its objects and its rows.

The audit trail keeps what happened (it holds no patient data); nothing else of the case stays.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlmodel import Session, SQLModel, col, delete, select

from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.breakglass.models import BreakGlassGrant
from portal.cases.models import Case, CaseConsent, CaseEvent
from portal.dicomweb.models import DicomwebToken
from portal.errors import NotFound
from portal.i18n import _
from portal.intake.models import (
    ArchiveReport,
    CaseFile,
    DicomInstance,
    DicomSeries,
    DicomStudy,
    TusChunk,
    TusUpload,
)
from portal.notifications.models import OutboxMessage
from portal.objects import texts
from portal.objects.models import CaseKey, PendingText, StoredObject
from reviewers.models import CaseAssignment, CaseQuestion, Opinion, OpinionAddendum
from reviewers.sharing.models import ShareLink
from reviewers.treatment.models import TreatmentRequest
from storage.vault import Vault

# Every table that references cases.id, deleted (in this order) before the case row itself.
# tests/portal/test_objects.py fails when a new table is missing here.
CASE_DEPENDENTS: list[type[SQLModel]] = [
    PendingText,
    CaseFile,
    StoredObject,
    DicomStudy,
    ArchiveReport,
    CaseConsent,
    TusUpload,
    CaseEvent,
    Opinion,
    CaseQuestion,
    CaseAssignment,
    OutboxMessage,
    DicomwebToken,
    BreakGlassGrant,
    TreatmentRequest,
    ShareLink,
]


@dataclass(frozen=True)
class ErasureReport:
    reference: str
    key_destroyed: bool
    objects_deleted: int


def erase_case(
    *, session: Session, vault: Vault, ctx: AuditContext, case_id: uuid.UUID
) -> ErasureReport:
    """Destroy the key first (committed on its own), then objects, then rows.

    Once the key row is gone the ciphertext is unreadable everywhere — in the bucket, in
    backups, in copies — so a failure in the later steps leaves nothing recoverable behind.
    """
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(_("Case not found."))
    reference = case.reference
    key = session.get(CaseKey, case_id)
    if key is not None:
        session.delete(key)
    audit_service.record(
        session=session,
        ctx=ctx,
        action="case.key_destroyed",
        entity_type="case",
        entity_id=case_id,
        case_id=case_id,
    )
    session.commit()

    texts.forget(session=session, case_id=case_id)
    deleted = vault.erase_case(str(case_id))
    _delete_index(session, case_id)
    for model in CASE_DEPENDENTS:
        session.exec(delete(model).where(model.case_id == case_id))  # type: ignore[attr-defined]
    session.delete(case)
    audit_service.record(
        session=session,
        ctx=ctx,
        action="case.erase",
        entity_type="case",
        entity_id=case_id,
        case_id=case_id,
        details={"reference": reference, "objects_deleted": deleted},
    )
    session.commit()
    return ErasureReport(
        reference=reference, key_destroyed=key is not None, objects_deleted=deleted
    )


def _delete_index(session: Session, case_id: uuid.UUID) -> None:
    """Instances and series hang off studies, not the case: remove them first."""
    studies = select(DicomStudy.id).where(DicomStudy.case_id == case_id)
    series = select(DicomSeries.id).where(col(DicomSeries.study_id).in_(studies))
    session.exec(delete(DicomInstance).where(col(DicomInstance.series_id).in_(series)))
    session.exec(delete(DicomSeries).where(col(DicomSeries.study_id).in_(studies)))
    uploads = select(TusUpload.id).where(TusUpload.case_id == case_id)
    session.exec(delete(TusChunk).where(col(TusChunk.upload_id).in_(uploads)))
    opinions = select(Opinion.id).where(Opinion.case_id == case_id)
    session.exec(delete(OpinionAddendum).where(col(OpinionAddendum.opinion_id).in_(opinions)))
