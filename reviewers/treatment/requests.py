"""Treatment-plan requests: once the opinion is delivered, the patient asks for a plan for the
treatments it links (at a clinic they choose, or "help me choose"); coordinators take it up,
answer, and the request is closed or cancelled.

The one table of statuses is :data:`TRANSITIONS`; who may make each move is decided by
``portal.access`` (``case.treatment.*``). Every step is audited; coordinators are mailed when a
request arrives and the patient when it is answered (no clinical text in either mail).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlmodel import Session, col, select

from portal import access, pagination
from portal.access import Principal
from portal.accounts.models import User
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.cases.models import Case, CaseStatus
from portal.db import utcnow
from portal.errors import Conflict, Forbidden, InvalidInput, NotFound
from portal.i18n import N_, gettext, pgettext
from portal.notifications import service as notifications
from portal.notifications.models import NotificationKind
from portal.objects import texts
from portal.pagination import PageRequest
from portal.settings import Settings
from reviewers import opinions, workflow
from reviewers.models import Opinion, OpinionStatus
from reviewers.treatment import guide
from reviewers.treatment.models import (
    OPEN_STATUSES,
    Clinic,
    ClinicOffer,
    RequestStatus,
    RequestStatusChange,
    TreatmentOption,
    TreatmentRequest,
    TreatmentRequestCreate,
    TreatmentRequestPublic,
)

R = RequestStatus

TRANSITIONS: dict[tuple[RequestStatus, RequestStatus], str] = {
    (R.requested, R.in_progress): "case.treatment.answer",
    (R.requested, R.answered): "case.treatment.answer",
    (R.in_progress, R.answered): "case.treatment.answer",
    (R.answered, R.in_progress): "case.treatment.answer",  # the answer is being revised
    (R.answered, R.closed): "case.treatment.withdraw",
    (R.requested, R.cancelled): "case.treatment.withdraw",
    (R.in_progress, R.cancelled): "case.treatment.withdraw",
}
"""Each move and the case action that makes it (``portal.access`` says who holds it)."""

REQUESTABLE = frozenset({CaseStatus.opinion_delivered, CaseStatus.closed})
"""A plan is requested after the opinion, also once the patient has closed the case."""


def status_words() -> dict[str, str]:
    """Each status as the reader's language says it of a request."""
    return {
        R.requested.value: pgettext("treatment request", "sent"),
        R.in_progress.value: pgettext("treatment request", "in progress"),
        R.answered.value: pgettext("treatment request", "answered"),
        R.closed.value: pgettext("treatment request", "closed"),
        R.cancelled.value: pgettext("treatment request", "cancelled"),
    }


def move_words() -> dict[str, str]:
    """The button that moves a request into each status."""
    return {
        R.in_progress.value: gettext("Take up"),
        R.answered.value: gettext("Send the answer"),
        R.closed.value: gettext("Close the request"),
        R.cancelled.value: gettext("Cancel the request"),
    }


def moves_for(principal: Principal, case: Case, status: RequestStatus) -> list[RequestStatus]:
    """The statuses this caller may move a request in ``status`` to (what a page offers)."""
    return [
        end
        for (start, end), action in TRANSITIONS.items()
        if start == status and access.may(principal, case, action)
    ]


def _signed_opinion(session: Session, case: Case) -> Opinion | None:
    opinion = session.exec(select(Opinion).where(Opinion.case_id == case.id)).first()
    return opinion if opinion is not None and opinion.status == OpinionStatus.signed else None


def linked_options(*, session: Session, case: Case) -> list[str]:
    """The guide's options the case's signed opinion links (none before it is signed)."""
    opinion = _signed_opinion(session, case)
    return opinions.linked_options(session=session, opinion=opinion) if opinion else []


def _chosen_clinic(session: Session, slug: str | None, options: Sequence[str]) -> Clinic | None:
    """The clinic the patient chose, which must offer one of the options; None: help me choose."""
    if slug is None:
        return None
    clinic = session.exec(
        select(Clinic)
        .join(ClinicOffer, col(ClinicOffer.clinic_id) == col(Clinic.id))
        .join(TreatmentOption, col(TreatmentOption.id) == col(ClinicOffer.option_id))
        .where(Clinic.slug == slug, col(Clinic.active).is_(True))
        .where(col(TreatmentOption.slug).in_(list(options)))
    ).first()
    if clinic is None:
        raise InvalidInput(
            N_(
                "This clinic does not offer the treatments your opinion names. Choose one of the "
                "clinics listed, or ask us to help you choose."
            )
        )
    return clinic


def request_plan(
    *,
    session: Session,
    settings: Settings,
    principal: Principal,
    ctx: AuditContext,
    case_id: uuid.UUID,
    data: TreatmentRequestCreate,
) -> TreatmentRequest:
    """The patient asks for a treatment plan for the options their opinion links."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.treatment.request"
    )
    case = workflow.lock_case(session=session, case=case)
    options = linked_options(session=session, case=case) if case.status in REQUESTABLE else []
    if not options:
        raise Conflict(
            N_(
                "A treatment plan can be requested once the opinion is delivered and names "
                "treatment options from the guide."
            )
        )
    clinic = _chosen_clinic(session, data.clinic, options)
    pending = session.exec(
        select(TreatmentRequest.id).where(
            TreatmentRequest.case_id == case.id,
            col(TreatmentRequest.status).in_(list(OPEN_STATUSES)),
        )
    ).first()
    if pending is not None:
        raise Conflict(
            N_(
                "You already have a treatment-plan request on this case that a coordinator is "
                "working on. Cancel it first to send a new one."
            )
        )
    now = utcnow()
    request = TreatmentRequest(
        case_id=case.id,
        patient_id=principal.user_id,
        clinic_id=clinic.id if clinic else None,
        options=options,
        travel_from=data.travel_from,
        travel_to=data.travel_to,
        created_at=now,
        updated_at=now,
    )
    texts.for_case(session=session, case_id=case.id).seal(
        request, "notes", data.notes.strip() or None
    )
    session.add(request)
    session.flush()
    audit_service.record(
        session=session,
        ctx=ctx,
        action="treatment.request",
        entity_type="treatment_request",
        entity_id=request.id,
        case_id=case.id,
        details={"clinic": clinic.slug if clinic else "help_me_choose", "options": len(options)},
    )
    notifications.notify_coordinators(
        session=session,
        kind=NotificationKind.treatment_requested,
        case=case,
        base_url=settings.base_url,
    )
    session.commit()
    return request


def change_status(
    *,
    session: Session,
    settings: Settings,
    principal: Principal,
    ctx: AuditContext,
    request_id: uuid.UUID,
    data: RequestStatusChange,
) -> TreatmentRequest:
    """Move a request on: take it up, answer it, close or cancel it."""
    request, case = _request_and_case(session, principal, request_id)
    to = data.status
    into = [action for (_, end), action in TRANSITIONS.items() if end == to]
    if not into or not access.may_ever(principal, into):
        raise Forbidden(N_("You are not allowed to move a treatment-plan request to this status."))
    action = TRANSITIONS.get((request.status, to))
    if action is None:
        raise Conflict(N_("The request cannot move to that status from where it is now."))
    if not access.may(principal, case, action):
        raise Forbidden(N_("You are not allowed to move a treatment-plan request to this status."))
    answer = (data.answer or "").strip()
    if to == R.answered and not answer:
        raise InvalidInput(N_("Write the answer for the patient first."))
    workflow.lock_case(session=session, case=case)
    session.refresh(request)
    if (request.status, to) not in TRANSITIONS:
        raise Conflict(N_("The request was changed meanwhile; reload the page."))
    now = utcnow()
    before = request.status
    request.status, request.updated_at = to, now
    if to == R.answered:
        texts.for_case(session=session, case_id=case.id).seal(request, "answer", answer)
        request.answered_by, request.answered_at = principal.user_id, now
    session.add(request)
    audit_service.record(
        session=session,
        ctx=ctx,
        action="treatment.request.status",
        entity_type="treatment_request",
        entity_id=request.id,
        case_id=case.id,
        details={"from": before.value, "to": to.value},
    )
    if to == R.answered:
        patient = session.get(User, case.patient_id)
        assert patient is not None
        notifications.notify(
            session=session,
            kind=NotificationKind.treatment_answered,
            recipient=patient,
            case=case,
            base_url=settings.base_url,
        )
    session.commit()
    return request


def _request_and_case(
    session: Session, principal: Principal, request_id: uuid.UUID
) -> tuple[TreatmentRequest, Case]:
    """The request and its case, if the caller may read the case's requests (else 404)."""
    request = session.get(TreatmentRequest, request_id)
    if request is None:
        raise NotFound(N_("There is no such treatment-plan request."))
    try:
        case = access.case_for(
            session=session,
            principal=principal,
            case_id=request.case_id,
            action="case.treatment.read",
        )
    except NotFound:
        raise NotFound(N_("There is no such treatment-plan request.")) from None
    return request, case


def read_request(
    *, session: Session, principal: Principal, ctx: AuditContext, request_id: uuid.UUID
) -> tuple[TreatmentRequestPublic, Case]:
    """One request with its notes and answer (audited as a read of the case)."""
    request, case = _request_and_case(session, principal, request_id)
    audit_service.record_read(
        session=session,
        ctx=ctx,
        action="treatment.request.read",
        entity_type="treatment_request",
        entity_id=request.id,
        case_id=case.id,
    )
    session.commit()
    return describe(session=session, rows=[(request, case)])[0], case


def list_for_case(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    case_id: uuid.UUID,
    page: PageRequest,
) -> tuple[list[TreatmentRequestPublic], str | None]:
    """The case's requests, newest first."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.treatment.read"
    )
    query = pagination.after(
        select(TreatmentRequest).where(TreatmentRequest.case_id == case.id),
        [col(TreatmentRequest.created_at), col(TreatmentRequest.id)],
        page,
        descending=True,
    )
    rows, next_cursor = pagination.cut(
        session.exec(query).all(), page, lambda row: (row.created_at, row.id)
    )
    audit_service.record_read(
        session=session,
        ctx=ctx,
        action="treatment.request.list",
        case_id=case.id,
        details={"count": len(rows)},
    )
    session.commit()
    return describe(session=session, rows=[(row, case) for row in rows]), next_cursor


def list_all(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    status: RequestStatus | None,
    page: PageRequest,
) -> tuple[list[TreatmentRequestPublic], str | None]:
    """Every case's requests for coordinators, newest first, optionally in one status."""
    access.require(principal, "treatment.requests.read")
    query = select(TreatmentRequest, Case).join(Case, col(Case.id) == col(TreatmentRequest.case_id))
    if status is not None:
        query = query.where(TreatmentRequest.status == status)
    query = pagination.after(
        query, [col(TreatmentRequest.created_at), col(TreatmentRequest.id)], page, descending=True
    )
    found = session.exec(query).all()
    rows, next_cursor = pagination.cut(
        [(request, case) for request, case in found],
        page,
        lambda row: (row[0].created_at, row[0].id),
    )
    audit_service.record(
        session=session,
        ctx=ctx,
        action="treatment.request.list",
        details={"count": len(rows), "status": status.value if status else None},
    )
    session.commit()
    return describe(session=session, rows=rows), next_cursor


def public(*, session: Session, request: TreatmentRequest) -> TreatmentRequestPublic:
    """A request its caller has just made or moved (that step is audited already)."""
    case = session.get(Case, request.case_id)
    assert case is not None
    return describe(session=session, rows=[(request, case)])[0]


def describe(
    *, session: Session, rows: Sequence[tuple[TreatmentRequest, Case]]
) -> list[TreatmentRequestPublic]:
    """Requests as their readers see them: notes and answer opened, the clinic named."""
    clinic_ids = {request.clinic_id for request, _ in rows if request.clinic_id is not None}
    clinics = (
        {
            clinic.id: guide.clinic_public(clinic)
            for clinic in session.exec(select(Clinic).where(col(Clinic.id).in_(clinic_ids))).all()
        }
        if clinic_ids
        else {}
    )
    sealers = texts.for_cases(session=session, case_ids={case.id for _, case in rows})
    described = []
    for request, case in rows:
        sealer = sealers.get(case.id)
        described.append(
            TreatmentRequestPublic(
                id=request.id,
                case_id=case.id,
                case_reference=case.reference,
                status=request.status,
                clinic=clinics.get(request.clinic_id) if request.clinic_id else None,
                options=list(request.options),
                travel_from=request.travel_from,
                travel_to=request.travel_to,
                notes=(sealer.open(request, "notes") if sealer else None) or "",
                answer=sealer.open(request, "answer") if sealer else None,
                answered_at=request.answered_at,
                created_at=request.created_at,
                updated_at=request.updated_at,
            )
        )
    return described
