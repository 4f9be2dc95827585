"""Opening, listing and reading cases. Status changes belong to ``reviewers.workflow``."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Sequence

from sqlmodel import Session, col, select

from portal import access, pagination
from portal.access import Principal
from portal.accounts.models import User
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.cases import consent, deadlines
from portal.cases.models import (
    Case,
    CaseConsent,
    CaseCreate,
    CaseEvent,
    CaseEventPublic,
    CasePublic,
    CaseStatus,
    CaseSummary,
    ConsentRequest,
    PersonRef,
)
from portal.cases.timeline import in_words
from portal.db import utcnow
from portal.errors import Conflict, InvalidInput
from portal.i18n import _
from portal.objects import texts
from portal.pagination import PageRequest

FIRST_PAGE = PageRequest()
_REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: read out on the phone


def new_reference() -> str:
    return "SO-" + "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(6))


def open_case(
    *, session: Session, principal: Principal, ctx: AuditContext, patient: User, data: CaseCreate
) -> Case:
    """A patient opens a draft case with their own question."""
    access.require(principal, "case.create")
    case = Case(
        reference=_unique_reference(session),
        patient_id=patient.id,
        subject=data.subject,
        body_region=data.body_region,
        language=data.language or patient.language,
        priority=data.priority,
        status=CaseStatus.draft,
    )
    session.add(case)
    session.flush()
    sealer = texts.for_case(session=session, case_id=case.id)
    sealer.seal(case, "clinical_question", data.clinical_question)
    sealer.seal(case, "history", data.history)
    session.add(
        CaseEvent(
            case_id=case.id, actor_id=patient.id, actor_role=principal.role, to_status=case.status
        )
    )
    audit_service.record(
        session=session,
        ctx=ctx,
        action="case.create",
        entity_type="case",
        entity_id=case.id,
        case_id=case.id,
    )
    session.commit()
    return case


def _unique_reference(session: Session) -> str:
    while True:
        reference = new_reference()
        if session.exec(select(Case.id).where(Case.reference == reference)).first() is None:
            return reference


NEWEST_FIRST = (col(Case.created_at), col(Case.id))
"""The order of every case list: newest first, ties broken by id (keyset, descending)."""


def list_cases(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    status: CaseStatus | None = None,
    page: PageRequest = FIRST_PAGE,
) -> tuple[list[Case], str | None]:
    """One page of the cases this caller may see, newest first, and the cursor after it."""
    query = select(Case).where(access.case_visibility(principal))
    if status is not None:
        query = query.where(Case.status == status)
    rows = session.exec(pagination.after(query, NEWEST_FIRST, page, descending=True)).all()
    cases, next_cursor = pagination.cut(rows, page, lambda case: (case.created_at, case.id))
    audit_service.record_read(
        session=session,
        ctx=ctx,
        action="case.list",
        details={"count": len(cases), "status": status},
    )
    session.commit()
    return cases, next_cursor


def read_case(
    *, session: Session, principal: Principal, ctx: AuditContext, case_id: uuid.UUID
) -> Case:
    """One case the caller may see; the read itself is audited."""
    case = access.case_for(session=session, principal=principal, case_id=case_id)
    audit_service.record_read(
        session=session,
        ctx=ctx,
        action="case.read",
        entity_type="case",
        entity_id=case.id,
        case_id=case.id,
    )
    session.commit()
    return case


def _person(session: Session, user_id: uuid.UUID | None) -> PersonRef | None:
    if user_id is None:
        return None
    user = session.get(User, user_id)
    return PersonRef(id=user.id, full_name=user.full_name) if user else None


def deadline_state(case: Case, *, due_soon_hours: int = 24) -> str | None:
    """Where the case stands against its deadline, while one runs."""
    if case.status not in deadlines.ACTIVE_STATUSES or case.due_at is None:
        return None
    state = deadlines.deadline_state(
        case.due_at, utcnow(), due_soon_hours=due_soon_hours, paused=case.paused_at is not None
    )
    return state.value if state else None


def people(*, session: Session, user_ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, PersonRef]:
    """The named people among ``user_ids``, in one query."""
    wanted = {user_id for user_id in user_ids if user_id is not None}
    if not wanted:
        return {}
    rows = session.exec(select(User.id, User.full_name).where(col(User.id).in_(wanted))).all()
    return {user_id: PersonRef(id=user_id, full_name=name) for user_id, name in rows}


def summarize_all(*, session: Session, cases: Sequence[Case]) -> list[CaseSummary]:
    """The summaries of a page of cases, their specialists named in one query."""
    named = people(session=session, user_ids=[case.assigned_specialist_id for case in cases])
    return [
        CaseSummary.model_validate(
            case,
            update={
                "assigned_specialist": named.get(case.assigned_specialist_id)
                if case.assigned_specialist_id
                else None,
                "deadline_state": deadline_state(case),
            },
        )
        for case in cases
    ]


def summarize(*, session: Session, case: Case) -> CaseSummary:
    return CaseSummary.model_validate(
        case,
        update={
            "assigned_specialist": _person(session, case.assigned_specialist_id),
            "deadline_state": deadline_state(case),
        },
    )


def describe(*, session: Session, principal: Principal, case: Case) -> CasePublic:
    """The public view of a case, with its timeline; the clinical text only for those who may
    read the case's content (``clinical_question`` and ``history`` are null for the others)."""
    events = session.exec(
        select(CaseEvent)
        .where(CaseEvent.case_id == case.id)
        .order_by(col(CaseEvent.at), col(CaseEvent.id))
    ).all()
    named = people(session=session, user_ids=[case.patient_id, case.assigned_specialist_id])
    patient = named.get(case.patient_id)
    assert patient is not None
    readable = access.permits(
        session=session, principal=principal, case=case, action="case.clinical.read"
    )
    sealer = texts.for_case(session=session, case_id=case.id)
    clinical = (
        {
            "clinical_question": sealer.open(case, "clinical_question") or "",
            "history": sealer.open(case, "history"),
        }
        if readable
        else {"clinical_question": None, "history": None}
    )
    return CasePublic.model_validate(
        case,
        update={
            "assigned_specialist": named.get(case.assigned_specialist_id)
            if case.assigned_specialist_id
            else None,
            "deadline_state": deadline_state(case),
            "patient": patient,
            "timeline": [
                CaseEventPublic.model_validate(
                    event,
                    update={
                        "note": in_words(sealer.open(event, "note"))
                        if access.may_read_event_note(principal, actor_role=event.actor_role)
                        else None
                    },
                )
                for event in events
            ],
            **clinical,
        },
    )


def record_consent(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    case_id: uuid.UUID,
    data: ConsentRequest,
) -> CaseConsent:
    """The owner accepts the current consent text for this case."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.consent"
    )
    if not data.accepted:
        raise InvalidInput(
            _("Consent is given by accepting the text; to withdraw, cancel the case.")
        )
    if data.version != consent.CURRENT_VERSION:
        raise Conflict(
            _(
                "The consent text has changed. Read version %(version)s and accept that one.",
                version=consent.CURRENT_VERSION,
            )
        )
    if case.status in {CaseStatus.cancelled, CaseStatus.closed}:
        raise Conflict(_("This case is no longer open."))
    record = CaseConsent(
        case_id=case.id, user_id=principal.user_id, version=data.version, client_ip=ctx.client_ip
    )
    session.add(record)
    session.flush()
    audit_service.record(
        session=session,
        ctx=ctx,
        action="case.consent",
        entity_type="case",
        entity_id=case.id,
        case_id=case.id,
        details={"version": data.version},
    )
    session.commit()
    return record


def current_consent(*, session: Session, case_id: uuid.UUID) -> CaseConsent | None:
    return session.exec(
        select(CaseConsent)
        .where(CaseConsent.case_id == case_id)
        .where(CaseConsent.version == consent.CURRENT_VERSION)
        .order_by(col(CaseConsent.accepted_at).desc())
    ).first()
