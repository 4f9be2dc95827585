"""The case state machine: every status change goes through ``transition``.

One table says which moves exist and who may make them; an illegal move raises ``Conflict``
(409) and changes nothing. Each move lands on the case timeline and in the audit trail with
its actor and reason, and its side effects (the deadline clock, notifications) happen here.

Who may move a case is named by the caller's relation to it:

``owner``        the patient who opened it;
``specialist``   the specialist it is assigned (or offered) to;
``coordinator``  a coordinator or an admin;
``system``       matching and the sweep, acting on nobody's behalf.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlmodel import Session, select

from portal.access import Principal
from portal.accounts.models import Role, User
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.cases.models import Case, CaseEvent, CaseStatus
from portal.db import utcnow
from portal.errors import Conflict, Forbidden
from portal.notifications import service as notifications
from portal.notifications.models import NotificationKind
from reviewers import deadlines


class Actor(StrEnum):
    owner = "owner"
    specialist = "specialist"
    coordinator = "coordinator"
    system = "system"


S = CaseStatus
A = Actor

TRANSITIONS: dict[tuple[CaseStatus, CaseStatus], frozenset[Actor]] = {
    (S.draft, S.submitted): frozenset({A.owner}),
    (S.submitted, S.assigned): frozenset({A.system, A.coordinator}),
    (S.submitted, S.triage): frozenset({A.system}),
    (S.triage, S.assigned): frozenset({A.coordinator, A.system}),
    # Another specialist: after a decline or a timeout (next candidate), or by a coordinator.
    (S.assigned, S.assigned): frozenset({A.specialist, A.system, A.coordinator}),
    (S.assigned, S.triage): frozenset({A.specialist, A.system}),
    (S.assigned, S.in_review): frozenset({A.specialist}),
    (S.in_review, S.info_requested): frozenset({A.specialist}),
    (S.info_requested, S.in_review): frozenset({A.owner}),
    (S.in_review, S.assigned): frozenset({A.coordinator}),
    (S.info_requested, S.assigned): frozenset({A.coordinator}),
    (S.in_review, S.opinion_delivered): frozenset({A.specialist}),
    (S.opinion_delivered, S.closed): frozenset({A.owner, A.coordinator}),
    (S.draft, S.cancelled): frozenset({A.owner, A.coordinator}),
    (S.submitted, S.cancelled): frozenset({A.owner, A.coordinator}),
    (S.triage, S.cancelled): frozenset({A.owner, A.coordinator}),
}

ACTIVE_STATUSES = frozenset({S.assigned, S.in_review, S.info_requested})
"""A specialist is busy with a case in one of these (its deadline runs)."""


def actor_of(principal: Principal | None, case: Case) -> Actor | None:
    """The caller's relation to the case, or ``None`` when it has none."""
    if principal is None:
        return Actor.system
    if principal.role == Role.patient and case.patient_id == principal.user_id:
        return Actor.owner
    if principal.role == Role.specialist and case.assigned_specialist_id == principal.user_id:
        return Actor.specialist
    if principal.role in {Role.coordinator, Role.admin}:
        return Actor.coordinator
    return None


def lock_case(*, session: Session, case: Case) -> Case:
    """Re-read ``case`` under a row lock so concurrent moves serialise (PostgreSQL).

    SQLite needs no row lock: every write transaction there is already exclusive.
    """
    locked = session.exec(select(Case).where(Case.id == case.id).with_for_update()).one()
    session.refresh(locked)
    return locked


def check(*, case: Case, to: CaseStatus, principal: Principal | None) -> Actor:
    """Raise unless this caller may move ``case`` to ``to`` now; return in which capacity.

    Someone who may never make such a move is refused (403) whatever the state; someone who
    may, but not from the case's current state, gets a conflict (409) naming the state.
    """
    actor = actor_of(principal, case)
    ever = any(actor in who for (_, target), who in TRANSITIONS.items() if target == to)
    if actor is None or not ever:
        raise Forbidden("You are not allowed to change this case's status.")
    allowed = TRANSITIONS.get((case.status, to))
    if allowed is None:
        raise Conflict(f"A case that is {_words(case.status)} cannot become {_words(to)}.")
    if actor not in allowed:
        raise Forbidden("You are not allowed to change this case's status.")
    return actor


def transition(
    *,
    session: Session,
    case: Case,
    to: CaseStatus,
    principal: Principal | None,
    ctx: AuditContext,
    base_url: str,
    note: str | None = None,
    now: datetime | None = None,
    specialist_id: uuid.UUID | None = None,
) -> CaseEvent:
    """Move ``case`` to ``to`` if the table allows it for this caller (the caller commits).

    Entering ``assigned`` needs ``specialist_id``: the specialist the case is offered to.
    """
    actor = check(case=case, to=to, principal=principal)
    if (to == S.assigned) != (specialist_id is not None):
        raise ValueError("a specialist is named exactly when a case becomes assigned")
    now = now or utcnow()
    if specialist_id is not None:
        case.assigned_specialist_id = specialist_id
    previous = case.status
    _on_leave(case, previous, now)
    case.status = to
    case.updated_at = now
    _on_enter(session, case, to, previous=previous, now=now, base_url=base_url)
    event = CaseEvent(
        case_id=case.id,
        at=now,
        actor_id=principal.user_id if principal else None,
        actor_role=principal.role if principal else "system",
        from_status=previous,
        to_status=to,
        note=note,
    )
    session.add_all([case, event])
    audit_service.record(
        session=session,
        ctx=ctx,
        action="case.status",
        entity_type="case",
        entity_id=case.id,
        case_id=case.id,
        details={"from": previous.value, "to": to.value, "as": actor.value},
    )
    return event


def _on_leave(case: Case, status: CaseStatus, now: datetime) -> None:
    if status == S.info_requested and case.paused_at is not None:
        if case.due_at is not None:
            case.due_at = deadlines.extend_for_pause(case.due_at, case.paused_at, now)
        case.paused_at = None


def _on_enter(
    session: Session,
    case: Case,
    status: CaseStatus,
    *,
    previous: CaseStatus,
    now: datetime,
    base_url: str,
) -> None:
    match status:
        case S.submitted:
            case.submitted_at = now
        case S.info_requested:
            case.paused_at = now
            _notify_user(session, NotificationKind.info_requested, case.patient_id, case, base_url)
        case S.assigned:
            if case.assigned_specialist_id is not None:
                _notify_user(
                    session,
                    NotificationKind.case_assigned,
                    case.assigned_specialist_id,
                    case,
                    base_url,
                )
        case S.triage:
            case.assigned_specialist_id = None
            notifications.notify_coordinators(
                session=session, kind=NotificationKind.triage_needed, case=case, base_url=base_url
            )
        case S.in_review if previous == S.info_requested:
            if case.assigned_specialist_id is not None:
                _notify_user(
                    session,
                    NotificationKind.info_provided,
                    case.assigned_specialist_id,
                    case,
                    base_url,
                )
        case S.opinion_delivered:
            case.deadline_notice = None
            _notify_user(
                session, NotificationKind.opinion_delivered, case.patient_id, case, base_url
            )
        case _:
            pass


def _notify_user(
    session: Session, kind: NotificationKind, user_id: uuid.UUID, case: Case, base_url: str
) -> None:
    recipient = session.get(User, user_id)
    if recipient is not None and recipient.is_active:
        notifications.notify(
            session=session, kind=kind, recipient=recipient, case=case, base_url=base_url
        )


def _words(status: CaseStatus) -> str:
    return status.value.replace("_", " ")
