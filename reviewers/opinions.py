"""The specialist's opinion: drafts that save repeatedly, a signature that freezes the content
under a SHA-256 of its canonical form, and dated addenda afterwards (never edits)."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from sqlmodel import Session, col, select

from portal import access
from portal.access import Principal
from portal.accounts import two_step
from portal.accounts.models import User
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.cases.models import Case, CaseStatus
from portal.db import utcnow
from portal.errors import Conflict, Forbidden, InvalidInput, NotFound
from portal.i18n import _
from portal.objects import texts
from portal.sealing import SecretBox
from portal.settings import Settings
from reviewers import assignment, specialists, workflow
from reviewers.models import (
    AddendumPublic,
    CaseQuestion,
    Opinion,
    OpinionAddendum,
    OpinionContent,
    OpinionDraft,
    OpinionPublic,
    OpinionStatus,
)
from reviewers.pdf import Addendum, AnsweredQuestion, OpinionDocument
from reviewers.treatment import guide

S = CaseStatus
CANONICAL_FORMAT = "second-opinion/1"


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """One byte string per document: sorted keys, no whitespace, UTF-8 (hashes are stable)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def stored_content(*, session: Session, content: OpinionContent) -> dict[str, Any]:
    """The sections as saved: linked guide options checked against the guide and put in its
    order, and left out altogether when there are none (the canonical form stays as it was)."""
    recommendations = content.recommendations
    recommendations.guide_options = guide.known_options(
        session=session, slugs=recommendations.guide_options
    )
    exclude = None if recommendations.guide_options else {"recommendations": {"guide_options"}}
    return content.model_dump(mode="json", exclude=exclude)


def linked_options(*, session: Session, opinion: Opinion) -> list[str]:
    """The guide's treatment options the opinion links (slugs, in the guide's order)."""
    recommendations = content_of(session=session, opinion=opinion).get("recommendations")
    if not isinstance(recommendations, dict):
        return []
    return [str(slug) for slug in recommendations.get("guide_options") or []]


def _specialist_case(*, session: Session, principal: Principal, case_id: uuid.UUID) -> Case:
    case = access.case_for(session=session, principal=principal, case_id=case_id)
    if not access.may_ever(principal, ["case.opinion.write"]):
        raise Forbidden(_("Only the specialist the case is assigned to can write its opinion."))
    return case


def _opinion(session: Session, case_id: uuid.UUID) -> Opinion | None:
    return session.exec(select(Opinion).where(Opinion.case_id == case_id)).first()


def content_of(*, session: Session, opinion: Opinion) -> dict[str, Any]:
    """The opinion's sections in clear (as saved: ``OpinionContent`` as JSON data)."""
    sealed = texts.for_case(session=session, case_id=opinion.case_id).open(opinion, "content")
    content: dict[str, Any] = json.loads(sealed) if sealed else {}
    return content


def questions_text(session: Session, question: CaseQuestion | None) -> str | None:
    if question is None:
        return None
    return texts.for_case(session=session, case_id=question.case_id).open(question, "text")


def save_draft(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    case_id: uuid.UUID,
    data: OpinionDraft,
) -> Opinion:
    """Save the specialist's draft (any number of times until signed)."""
    case = _specialist_case(session=session, principal=principal, case_id=case_id)
    case = workflow.lock_case(session=session, case=case)
    if case.status not in {S.in_review, S.info_requested}:
        raise Conflict(_("The opinion can be written once you have accepted the case."))
    opinion = _opinion(session, case.id)
    if opinion is not None and opinion.status == OpinionStatus.signed:
        raise Conflict(_("The opinion is signed; add an addendum instead of editing it."))
    if opinion is not None and data.revision is not None and data.revision != opinion.revision:
        raise Conflict(
            _("The opinion was changed elsewhere since you opened it; reload it before saving.")
        )
    content = stored_content(
        session=session,
        content=OpinionContent.model_validate(data.model_dump(exclude={"revision"})),
    )
    now = utcnow()
    if opinion is None:
        opinion = Opinion(case_id=case.id, author_id=principal.user_id, created_at=now)
    opinion.author_id = principal.user_id
    texts.for_case(session=session, case_id=case.id).seal(
        opinion, "content", json.dumps(content, ensure_ascii=False)
    )
    opinion.revision += 1
    opinion.updated_at = now
    session.add(opinion)
    session.flush()
    audit_service.record(
        session=session,
        ctx=ctx,
        action="opinion.save",
        entity_type="opinion",
        entity_id=opinion.id,
        case_id=case.id,
        details={"revision": opinion.revision},
    )
    session.commit()
    return opinion


def sign(
    *,
    session: Session,
    settings: Settings,
    box: SecretBox,
    principal: Principal,
    ctx: AuditContext,
    user: User,
    case_id: uuid.UUID,
    password: str,
    otp: str,
) -> Opinion:
    """Re-authenticate, freeze the content under its SHA-256, deliver the opinion."""
    case = _specialist_case(session=session, principal=principal, case_id=case_id)
    workflow.check(case=case, to=S.opinion_delivered, principal=principal)
    opinion = _opinion(session, case.id)
    if opinion is None:
        raise Conflict(_("Write the opinion before signing it."))
    content = content_of(session=session, opinion=opinion)
    missing = OpinionContent.model_validate(content).missing_for_signing()
    if missing:
        raise InvalidInput(
            _(
                "Before signing, fill in: %(sections)s.",
                sections=", ".join(_(section) for section in missing),
            )
        )
    two_step.reauthenticate(
        session=session,
        settings=settings,
        box=box,
        ctx=ctx,
        user=user,
        password=password,
        otp=otp,
        purpose="sign_opinion",
    )
    case = workflow.lock_case(session=session, case=case)
    session.refresh(opinion)
    if opinion.status == OpinionStatus.signed:
        raise Conflict(_("The opinion is already signed."))
    now = utcnow()
    profile = specialists.profile_for(session=session, user=user)
    document = {
        "format": CANONICAL_FORMAT,
        "case_id": str(case.id),
        "case_reference": case.reference,
        "signer_id": str(user.id),
        "signer_name": user.full_name,
        "signer_credentials": profile.credentials,
        "signed_at": now.isoformat(),
        "content": content_of(session=session, opinion=opinion),
    }
    canonical = canonical_bytes(document)
    opinion.status = OpinionStatus.signed
    opinion.signed_at = now
    opinion.signer_name = user.full_name
    opinion.signer_credentials = profile.credentials
    texts.for_case(session=session, case_id=case.id).seal(
        opinion, "canonical", canonical.decode("utf-8")
    )
    opinion.content_sha256 = hashlib.sha256(canonical).hexdigest()
    session.add(opinion)
    audit_service.record(
        session=session,
        ctx=ctx,
        action="opinion.sign",
        entity_type="opinion",
        entity_id=opinion.id,
        case_id=case.id,
        details={"sha256": opinion.content_sha256},
    )
    assignment.complete(session=session, case=case, now=now)
    workflow.transition(
        session=session,
        case=case,
        to=S.opinion_delivered,
        principal=principal,
        ctx=ctx,
        base_url=settings.base_url,
        now=now,
    )
    session.commit()
    return opinion


def add_addendum(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    case: Case,
    text: str,
    question: CaseQuestion | None = None,
) -> OpinionAddendum:
    """A dated addition to the signed opinion by its specialist (the caller commits)."""
    if not access.may(principal, case, "case.opinion.write"):
        raise Forbidden(_("Only the case's specialist can add to its opinion."))
    if case.status != S.opinion_delivered:
        raise Conflict(_("Addenda are added to a delivered opinion."))
    opinion = _opinion(session, case.id)
    if opinion is None or opinion.status != OpinionStatus.signed:
        raise Conflict(_("Addenda are added to a signed opinion."))
    author = session.get(User, principal.user_id)
    assert author is not None
    now = utcnow()
    document = {
        "format": CANONICAL_FORMAT,
        "opinion_sha256": opinion.content_sha256,
        "author_id": str(author.id),
        "at": now.isoformat(),
        "text": text,
        "answers_question": questions_text(session, question),
    }
    addendum = OpinionAddendum(
        opinion_id=opinion.id,
        author_id=author.id,
        author_name=author.full_name,
        at=now,
        question_id=question.id if question else None,
        content_sha256=hashlib.sha256(canonical_bytes(document)).hexdigest(),
    )
    texts.for_case(session=session, case_id=case.id).seal(addendum, "text", text)
    session.add(addendum)
    session.flush()
    audit_service.record(
        session=session,
        ctx=ctx,
        action="opinion.addendum",
        entity_type="opinion",
        entity_id=opinion.id,
        case_id=case.id,
        details={"sha256": addendum.content_sha256},
    )
    return addendum


def write_addendum(
    *, session: Session, principal: Principal, ctx: AuditContext, case_id: uuid.UUID, text: str
) -> OpinionAddendum:
    """The specialist adds a correction or a note to the delivered opinion."""
    case = access.case_for(session=session, principal=principal, case_id=case_id)
    case = workflow.lock_case(session=session, case=case)
    addendum = add_addendum(session=session, principal=principal, ctx=ctx, case=case, text=text)
    session.commit()
    return addendum


def readable_opinion(
    *, session: Session, principal: Principal, ctx: AuditContext, case_id: uuid.UUID, action: str
) -> tuple[Case, Opinion]:
    """The opinion, for staff at any time and for the patient once it is delivered."""
    case = access.case_for(session=session, principal=principal, case_id=case_id)
    opinion = _opinion(session, case.id)
    delivered = opinion is not None and opinion.status == OpinionStatus.signed
    readable = "case.opinion.read" if delivered else "case.opinion.read_draft"
    if opinion is None or not access.permits(
        session=session, principal=principal, case=case, action=readable
    ):
        raise NotFound(_("There is no opinion on this case yet."))
    audit_service.record_read(
        session=session,
        ctx=ctx,
        action=action,
        entity_type="opinion",
        entity_id=opinion.id,
        case_id=case.id,
    )
    session.commit()
    return case, opinion


def addenda(session: Session, opinion: Opinion) -> list[OpinionAddendum]:
    return list(
        session.exec(
            select(OpinionAddendum)
            .where(OpinionAddendum.opinion_id == opinion.id)
            .order_by(col(OpinionAddendum.at), col(OpinionAddendum.id))
        ).all()
    )


def describe(*, session: Session, opinion: Opinion) -> OpinionPublic:
    sealer = texts.for_case(session=session, case_id=opinion.case_id)
    return OpinionPublic(
        case_id=opinion.case_id,
        status=opinion.status,
        revision=opinion.revision,
        content=OpinionContent.model_validate(content_of(session=session, opinion=opinion)),
        author_id=opinion.author_id,
        updated_at=opinion.updated_at,
        signed_at=opinion.signed_at,
        signer_name=opinion.signer_name,
        signer_credentials=opinion.signer_credentials,
        content_sha256=opinion.content_sha256,
        addenda=[
            AddendumPublic(
                at=item.at,
                author_name=item.author_name,
                text=sealer.open(item, "text") or "",
                content_sha256=item.content_sha256,
                answers_question=item.question_id,
            )
            for item in addenda(session, opinion)
        ],
    )


def pdf_document(
    *, session: Session, principal: Principal, ctx: AuditContext, case_id: uuid.UUID
) -> OpinionDocument:
    """Everything the PDF prints, for a signed opinion the caller may read (audited)."""
    case, opinion = readable_opinion(
        session=session, principal=principal, ctx=ctx, case_id=case_id, action="opinion.download"
    )
    if opinion.status != OpinionStatus.signed or opinion.signed_at is None:
        raise Conflict(_("The opinion is not signed yet; the PDF exists once it is."))
    return opinion_document(session=session, case=case, opinion=opinion)


def opinion_document(*, session: Session, case: Case, opinion: Opinion) -> OpinionDocument:
    """Everything the PDF of a signed opinion prints (the caller has checked who may read it)."""
    assert opinion.signed_at is not None
    patient = session.get(User, case.patient_id)
    assert patient is not None
    content = OpinionContent.model_validate(content_of(session=session, opinion=opinion))
    sealer = texts.for_case(session=session, case_id=case.id)
    urgency = content.recommendations.urgency
    return OpinionDocument(
        case_reference=case.reference,
        case_subject=case.subject,
        patient_name=patient.full_name,
        patient_birth_date=patient.date_of_birth,
        specialist_name=opinion.signer_name or "",
        specialist_credentials=opinion.signer_credentials or "",
        submitted_at=case.submitted_at,
        signed_at=opinion.signed_at,
        summary=content.summary,
        findings=content.findings,
        impression=content.impression,
        answers=tuple(
            AnsweredQuestion(question=item.question, answer=item.answer) for item in content.answers
        ),
        treatment_options=content.recommendations.treatment_options,
        urgency=urgency.value if urgency else "",
        further_tests=content.recommendations.further_tests,
        limitations=content.limitations,
        content_sha256=opinion.content_sha256 or "",
        addenda=tuple(
            Addendum(at=item.at, author=item.author_name, text=sealer.open(item, "text") or "")
            for item in addenda(session, opinion)
        ),
        language=case.language,
    )
