"""Exports in FHIR R4: a delivered opinion as a document, a case's audit trail as AuditEvents.

Who may export is ``portal.access``'s to say (``case.fhir.read``, ``audit.read``); each export
is audited once, and the database is read in one short transaction before the PDF is
rendered and the resources are built.
"""

from __future__ import annotations

import dataclasses
import json
import uuid

from fhir.resources.R4B.bundle import Bundle
from sqlmodel import Session, col, select

from portal import access
from portal.access import Principal
from portal.accounts.models import User
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.cases import consent as consent_texts
from portal.cases.models import Case, CaseConsent
from portal.errors import Conflict
from portal.i18n import N_
from portal.intake import service as intake_service
from portal.objects import texts
from portal.pagination import PageRequest
from reviewers import opinions
from reviewers import pdf as opinion_pdf
from reviewers.fhir import audit_events
from reviewers.fhir.bundle import build_document
from reviewers.fhir.models import (
    CaseFacts,
    ConsentFacts,
    OpinionExport,
    PatientFacts,
    RecordFacts,
    SignerFacts,
)
from reviewers.models import Opinion, OpinionStatus, SpecialistProfile


class NotDelivered(Conflict):
    default_message = N_(
        "The opinion on this case has not been delivered yet; "
        "its FHIR document exists once the specialist has signed it."
    )


def opinion_document(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    case_id: uuid.UUID,
    base_url: str,
) -> Bundle:
    """The delivered opinion of a case as a FHIR document bundle (audited as an export).

    Raises
    ------
    NotFound
        No such case, or one the caller does not see.
    Forbidden
        The caller sees the case but may not export it (an admin; staff before submission).
    NotDelivered
        The opinion is not signed yet.
    """
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.fhir.read"
    )
    opinion = session.exec(select(Opinion).where(Opinion.case_id == case.id)).first()
    if opinion is None or opinion.status != OpinionStatus.signed or opinion.signed_at is None:
        raise NotDelivered()
    gathered = _gather(session, case, opinion)
    audit_service.record_read(
        session=session,
        ctx=ctx,
        action="fhir.document",
        entity_type="opinion",
        entity_id=opinion.id,
        case_id=case.id,
        details={"studies": len(gathered.studies), "records": len(gathered.records)},
    )
    session.commit()  # rendering and building below hold no transaction
    pdf = opinion_pdf.render_opinion_pdf(gathered.document)
    return build_document(dataclasses.replace(gathered, pdf=pdf), base_url=base_url)


def _gather(session: Session, case: Case, opinion: Opinion) -> OpinionExport:
    """Everything but the PDF (``pdf`` is empty), in the caller's transaction."""
    sealer = texts.for_case(session=session, case_id=case.id)
    patient = session.get(User, case.patient_id)
    assert patient is not None and opinion.signed_at is not None
    records = intake_service.list_records(session=session, case_id=case.id)
    names = intake_service.describe_files(session=session, files=records)
    return OpinionExport(
        opinion_id=opinion.id,
        signed_at=opinion.signed_at,
        content_sha256=opinion.content_sha256 or "",
        case=CaseFacts(
            id=case.id,
            reference=case.reference,
            subject=case.subject,
            body_region=case.body_region,
            priority=case.priority,
            language=case.language,
            submitted_at=case.submitted_at,
            question=sealer.open(case, "clinical_question") or "",
            history=sealer.open(case, "history"),
        ),
        patient=PatientFacts(
            id=patient.id,
            full_name=patient.full_name,
            birth_date=patient.date_of_birth,
            language=patient.language,
        ),
        signer=_signer(session, opinion, sealer.open(opinion, "canonical")),
        consent=_consent(session, case),
        studies=tuple(intake_service.study_index(session=session, case_id=case.id)),
        records=tuple(
            RecordFacts(
                id=row.id,
                filename=named.filename,
                kind=row.kind,
                size=row.size,
                created_at=row.created_at,
            )
            for row, named in zip(records, names, strict=True)
        ),
        document=opinions.opinion_document(session=session, case=case, opinion=opinion),
        pdf=b"",
    )


def _signer(session: Session, opinion: Opinion, canonical: str | None) -> SignerFacts:
    """The signer as the signed content names them (the last draft's author may differ)."""
    signed = json.loads(canonical) if canonical else {}
    signer_id = uuid.UUID(str(signed.get("signer_id") or opinion.author_id))
    profile = session.get(SpecialistProfile, signer_id)
    return SignerFacts(
        id=signer_id,
        full_name=opinion.signer_name or "",
        credentials=opinion.signer_credentials or "",
        languages=tuple(profile.languages) if profile else (),
    )


def _consent(session: Session, case: Case) -> ConsentFacts | None:
    """The case's latest consent, with the text of its version in the case's language."""
    row = session.exec(
        select(CaseConsent)
        .where(CaseConsent.case_id == case.id)
        .order_by(col(CaseConsent.accepted_at).desc(), col(CaseConsent.id).desc())
    ).first()
    if row is None or row.id is None:
        return None
    language, text = (
        consent_texts.consent_text(row.version, case.language)
        if row.version in consent_texts.CONSENT_TEXTS
        else (None, None)
    )
    return ConsentFacts(
        id=row.id,
        version=row.version,
        accepted_at=row.accepted_at,
        text_language=language,
        text=text,
    )


def audit_trail(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    case_id: uuid.UUID | None,
    page: PageRequest,
    base_url: str,
) -> Bundle:
    """One page of the audit trail (a case's, or all of it) as FHIR AuditEvents, in the same
    order and pages as ``GET /api/audit``; coordinators and admins only, the reading audited."""
    events, next_cursor = audit_service.read_trail(
        session=session, principal=principal, ctx=ctx, case_id=case_id, page=page
    )
    return audit_events.search_bundle(
        events, base_url=base_url, case_id=case_id, page=page, next_cursor=next_cursor
    )
