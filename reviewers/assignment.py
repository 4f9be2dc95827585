"""Offering cases to specialists: automatic matching, accept, decline, timeout, manual assignment.

Every offer is a ``CaseAssignment`` row; a specialist who declined a case or let the offer run
out is never offered the same case again automatically (a coordinator may still choose them).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from portal import access
from portal.access import Principal
from portal.accounts.models import Role, User
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.cases.models import Case, CaseStatus
from portal.cases.timeline import in_words
from portal.db import utcnow
from portal.errors import Conflict, Forbidden, InvalidInput, NotFound
from portal.i18n import N_, _
from portal.intake.models import DicomStudy
from portal.objects import texts
from portal.settings import Settings
from reviewers import specialists, workflow
from reviewers.matching import Candidate, CaseNeeds, MatchResult, match_specialists
from reviewers.models import AssignmentPublic, CaseAssignment, OfferStatus

S = CaseStatus
OPEN_OFFER = (OfferStatus.offered, OfferStatus.accepted)


def case_needs(
    *,
    session: Session,
    case: Case,
    now: datetime,
    settings: Settings,
    modalities: Iterable[str] | None = None,
) -> CaseNeeds:
    """What a reader of this case must cover: region, its studies' modalities (read now when
    the caller has not read them already), language."""
    if modalities is None:
        listed = session.exec(select(DicomStudy.modalities).where(DicomStudy.case_id == case.id))
        modalities = [code for text in listed for code in text.split(",")]
    due = case.due_at or now
    return CaseNeeds(
        case_id=case.id,
        patient_id=case.patient_id,
        body_region=case.body_region,
        modalities=frozenset(code for code in modalities if code),
        language=case.language,
        due=due,
        now=now,
    )


def already_offered(*, session: Session, case_id: uuid.UUID) -> frozenset[uuid.UUID]:
    rows = session.exec(
        select(CaseAssignment.specialist_id).where(CaseAssignment.case_id == case_id)
    ).all()
    return frozenset(rows)


def rank(
    *,
    session: Session,
    case: Case,
    settings: Settings,
    now: datetime,
    pool: Sequence[Candidate] | None = None,
    known: KnownOfCase | None = None,
) -> MatchResult:
    """Run matching for ``case`` against every specialist (``pool``, read now when not given),
    skipping earlier offers; what the caller already read of the case comes as ``known``."""
    needs = case_needs(
        session=session,
        case=case,
        now=now,
        settings=settings,
        modalities=known.modalities if known else None,
    )
    excluded = (
        frozenset(known.offered) if known else already_offered(session=session, case_id=case.id)
    )
    return match_specialists(
        needs,
        specialists.candidates(session=session, now=now) if pool is None else pool,
        excluded=excluded,
    )


@dataclass(frozen=True)
class KnownOfCase:
    """What a page already read of a case that matching needs: its studies' modalities and
    every specialist it was offered to."""

    modalities: list[str]
    offered: list[uuid.UUID]


def offer_next(
    *,
    session: Session,
    case: Case,
    principal: Principal | None,
    ctx: AuditContext,
    settings: Settings,
    now: datetime,
    note: str | None = None,
) -> CaseAssignment | None:
    """Offer the case to the best remaining candidate, or hand it to triage (the caller commits)."""
    result = rank(session=session, case=case, settings=settings, now=now)
    chosen = result.chosen
    if chosen is None:
        reasons = triage_reason(result)
        workflow.transition(
            session=session,
            case=case,
            to=S.triage,
            principal=principal,
            ctx=ctx,
            base_url=settings.base_url,
            note=" ".join(part for part in (note, reasons) if part),
            now=now,
        )
        return None
    offer = CaseAssignment(
        case_id=case.id,
        specialist_id=chosen.specialist_id,
        offered_at=now,
        respond_by=now + timedelta(hours=settings.acceptance_window_hours),
        score=chosen.score,
        explanation=chosen.explanation[:1000],
        needs_translation=result.needs_translation,
    )
    session.add(offer)
    case.needs_translation = result.needs_translation
    workflow.transition(
        session=session,
        case=case,
        to=S.assigned,
        principal=principal,
        ctx=ctx,
        base_url=settings.base_url,
        note=" ".join(part for part in (note, f"Matched: {chosen.explanation}") if part),
        now=now,
        specialist_id=chosen.specialist_id,
    )
    return offer


def triage_reason(result: MatchResult) -> str:
    if not result.rejected:
        return N_("No specialist is registered yet.")
    return N_("No specialist could take the case automatically; a coordinator will choose one.")


def current_offer(*, session: Session, case: Case) -> CaseAssignment | None:
    """The open offer (or accepted assignment) of the case's current specialist."""
    if case.assigned_specialist_id is None:
        return None
    return session.exec(
        select(CaseAssignment)
        .where(CaseAssignment.case_id == case.id)
        .where(CaseAssignment.specialist_id == case.assigned_specialist_id)
        .where(col(CaseAssignment.status).in_(OPEN_OFFER))
        .order_by(col(CaseAssignment.offered_at).desc())
    ).first()


def _case_for_specialist(
    *, session: Session, principal: Principal, case_id: uuid.UUID
) -> tuple[Case, CaseAssignment]:
    case = access.case_for(session=session, principal=principal, case_id=case_id)
    if not access.may_ever(principal, ["case.offer.accept"]):
        raise Forbidden(_("Only the specialist this case is offered to can accept or decline it."))
    case = workflow.lock_case(session=session, case=case)
    workflow.check(case=case, to=S.in_review, principal=principal)
    offer = current_offer(session=session, case=case)
    if offer is None or offer.status != OfferStatus.offered:
        raise Conflict(_("There is no open offer of this case to you."))
    return case, offer


def accept(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    settings: Settings,
    case_id: uuid.UUID,
) -> Case:
    """The offered specialist takes the case on: review starts."""
    case, offer = _case_for_specialist(session=session, principal=principal, case_id=case_id)
    now = utcnow()
    offer.status = OfferStatus.accepted
    offer.responded_at = now
    session.add(offer)
    workflow.transition(
        session=session,
        case=case,
        to=S.in_review,
        principal=principal,
        ctx=ctx,
        base_url=settings.base_url,
        now=now,
    )
    session.commit()
    return case


def decline(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    settings: Settings,
    case_id: uuid.UUID,
    reason: str,
) -> Case:
    """The offered specialist turns the case down; it goes to the next candidate or to triage."""
    case, offer = _case_for_specialist(session=session, principal=principal, case_id=case_id)
    now = utcnow()
    offer.status = OfferStatus.declined
    offer.responded_at = now
    texts.for_case(session=session, case_id=case.id).seal(offer, "reason", reason)
    session.add(offer)
    offer_next(
        session=session,
        case=case,
        principal=principal,
        ctx=ctx,
        settings=settings,
        now=now,
        note=f"Declined: {reason}",
    )
    session.commit()
    return case


def time_out(
    *,
    session: Session,
    case: Case,
    offer: CaseAssignment,
    ctx: AuditContext,
    settings: Settings,
    now: datetime,
) -> None:
    """The offer ran out unanswered: the next candidate gets it (the sweep calls this)."""
    offer.status = OfferStatus.timed_out
    offer.responded_at = now
    session.add(offer)
    offer_next(
        session=session,
        case=case,
        principal=None,
        ctx=ctx,
        settings=settings,
        now=now,
        note=N_("The offer was not answered in time."),
    )


def assign(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    settings: Settings,
    case_id: uuid.UUID,
    specialist_id: uuid.UUID,
    reason: str | None,
) -> Case:
    """A coordinator gives the case to a specialist of their choice (also to reassign)."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.assign"
    )
    case = workflow.lock_case(session=session, case=case)
    workflow.check(case=case, to=S.assigned, principal=principal)
    specialist = session.get(User, specialist_id)
    if specialist is None or specialist.role != Role.specialist:
        raise NotFound(_("Specialist not found."))
    if not specialist.is_active:
        raise InvalidInput(_("This specialist's account is deactivated."))
    if specialist.id == case.assigned_specialist_id:
        raise Conflict(_("The case is already with this specialist."))
    now = utcnow()
    previous = current_offer(session=session, case=case)
    if previous is not None:
        previous.status = OfferStatus.withdrawn
        previous.responded_at = previous.responded_at or now
        texts.for_case(session=session, case_id=case.id).seal(
            previous, "reason", reason or N_("Reassigned by a coordinator.")
        )
        session.add(previous)
    ranking = rank(session=session, case=case, settings=settings, now=now)
    explanation = next(
        (item.explanation for item in ranking.ranked if item.specialist_id == specialist.id),
        "chosen by a coordinator",
    )
    session.add(
        CaseAssignment(
            case_id=case.id,
            specialist_id=specialist.id,
            offered_at=now,
            respond_by=now + timedelta(hours=settings.acceptance_window_hours),
            assigned_by=principal.user_id,
            explanation=explanation[:1000],
        )
    )
    workflow.transition(
        session=session,
        case=case,
        to=S.assigned,
        principal=principal,
        ctx=ctx,
        base_url=settings.base_url,
        note=reason or N_("Assigned by a coordinator."),
        now=now,
        specialist_id=specialist.id,
    )
    session.commit()
    return case


def history(*, session: Session, case: Case) -> list[AssignmentPublic]:
    """Every offer of the case, oldest first, with names and explanations (staff only)."""
    rows = session.exec(
        select(CaseAssignment, User)
        .join(User, col(User.id) == col(CaseAssignment.specialist_id))
        .where(CaseAssignment.case_id == case.id)
        .order_by(col(CaseAssignment.offered_at))
    ).all()
    sealer = texts.for_case(session=session, case_id=case.id)
    return [
        AssignmentPublic(
            specialist_id=offer.specialist_id,
            specialist_name=user.full_name,
            status=offer.status,
            offered_at=offer.offered_at,
            respond_by=offer.respond_by,
            responded_at=offer.responded_at,
            reason=in_words(sealer.open(offer, "reason")),
            explanation=offer.explanation,
            automatic=offer.assigned_by is None,
            needs_translation=offer.needs_translation,
        )
        for offer, user in rows
    ]


def complete(*, session: Session, case: Case, now: datetime) -> None:
    """The opinion was delivered: the current assignment is done (turnaround counts from it)."""
    offer = current_offer(session=session, case=case)
    if offer is not None:
        offer.status = OfferStatus.completed
        offer.completed_at = now
        session.add(offer)


def suggestions_for(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    settings: Settings,
    case_id: uuid.UUID,
    pool: Sequence[Candidate] | None = None,
    known: KnownOfCase | None = None,
) -> MatchResult:
    """Ranked candidates for a coordinator choosing by hand (triage or reassignment);
    ``pool`` is the specialists already read for the page (:func:`specialists.team`), and
    ``known`` what it read of the case."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.assignments.read"
    )
    result = rank(
        session=session, case=case, settings=settings, now=utcnow(), pool=pool, known=known
    )
    audit_service.record_read(
        session=session,
        ctx=ctx,
        action="case.suggestions",
        entity_type="case",
        entity_id=case.id,
        case_id=case.id,
    )
    session.commit()
    return result


def list_assignments(
    *, session: Session, principal: Principal, ctx: AuditContext, case_id: uuid.UUID
) -> list[AssignmentPublic]:
    """The offer history of a case for coordinators (who was asked, why, what they said)."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.assignments.read"
    )
    audit_service.record_read(
        session=session,
        ctx=ctx,
        action="case.assignments",
        entity_type="case",
        entity_id=case.id,
        case_id=case.id,
    )
    session.commit()
    return history(session=session, case=case)
