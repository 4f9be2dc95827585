"""The case state machine: every status change goes through ``transition``.

One table says which moves exist and which actions make them; an illegal move raises
``Conflict`` (409) and changes nothing. Each move lands on the case timeline and in the audit
trail with its actor and reason; its side effects (the deadline clock, notifications) happen
here. Who may take each action is decided by ``portal.access`` from the caller's relation to
the case (``None`` as the principal is the system: matching and the sweep).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Session, select

from portal import access
from portal.access import Principal
from portal.accounts.models import User
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.cases.models import Case, CaseEvent, CaseStatus
from portal.cases.timeline import seal_note
from portal.db import utcnow
from portal.errors import Conflict, Forbidden
from portal.i18n import _
from portal.labels import word
from portal.notifications import service as notifications
from portal.notifications.models import NotificationKind
from reviewers import deadlines

S = CaseStatus

TRANSITIONS: dict[tuple[CaseStatus, CaseStatus], frozenset[str]] = {
    (S.draft, S.submitted): frozenset({"case.submit"}),
    (S.submitted, S.assigned): frozenset({"case.match", "case.assign"}),
    (S.submitted, S.triage): frozenset({"case.match"}),
    (S.triage, S.assigned): frozenset({"case.match", "case.assign"}),
    # Another specialist: after a decline or a timeout (next candidate), or by a coordinator.
    (S.assigned, S.assigned): frozenset({"case.offer.decline", "case.match", "case.assign"}),
    (S.assigned, S.triage): frozenset({"case.offer.decline", "case.match"}),
    (S.assigned, S.in_review): frozenset({"case.offer.accept"}),
    (S.in_review, S.info_requested): frozenset({"case.clarification.ask"}),
    (S.info_requested, S.in_review): frozenset({"case.clarification.answer"}),
    (S.in_review, S.assigned): frozenset({"case.assign"}),
    (S.info_requested, S.assigned): frozenset({"case.assign"}),
    (S.in_review, S.opinion_delivered): frozenset({"case.opinion.write"}),
    (S.opinion_delivered, S.closed): frozenset({"case.close"}),
    (S.draft, S.cancelled): frozenset({"case.cancel"}),
    (S.submitted, S.cancelled): frozenset({"case.cancel"}),
    (S.triage, S.cancelled): frozenset({"case.cancel"}),
}
"""Each move and the actions that make it."""


def assignable(status: CaseStatus) -> bool:
    """Whether a coordinator may (re)assign a case in ``status`` by hand."""
    return "case.assign" in TRANSITIONS.get((status, S.assigned), frozenset())


def lock_case(*, session: Session, case: Case) -> Case:
    """Re-read ``case`` under a row lock so concurrent moves serialise (PostgreSQL).

    SQLite needs no row lock: every write transaction there is already exclusive.
    """
    locked = session.exec(select(Case).where(Case.id == case.id).with_for_update()).one()
    session.refresh(locked)
    return locked


def check(*, case: Case, to: CaseStatus, principal: Principal | None) -> access.Relation:
    """Raise unless this caller may move ``case`` to ``to`` now; return in which relation.

    Someone who may never make such a move is refused (403) whatever the state; someone who
    may, but not from the case's current state, gets a conflict (409) naming the state.
    """
    into = [
        action for (_start, end), made_by in TRANSITIONS.items() if end == to for action in made_by
    ]
    relation = access.relation_to(principal, case)
    if relation is None or not access.may_ever(principal, into):
        raise Forbidden(_("You are not allowed to change this case's status."))
    actions = TRANSITIONS.get((case.status, to))
    if actions is None:
        raise Conflict(
            _(
                "A case that is %(status)s cannot become %(next_status)s.",
                status=word(case.status),
                next_status=word(to),
            )
        )
    if not any(access.may(principal, case, action) for action in actions):
        raise Forbidden(_("You are not allowed to change this case's status."))
    return relation


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
    relation = check(case=case, to=to, principal=principal)
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
    )
    session.add_all([case, event])
    seal_note(session=session, event=event, note=note)
    audit_service.record(
        session=session,
        ctx=ctx,
        action="case.status",
        entity_type="case",
        entity_id=case.id,
        case_id=case.id,
        details={"from": previous.value, "to": to.value, "as": relation.value},
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
            # A case is submitted once (draft is left for good), so this is its one receipt.
            _notify_user(session, NotificationKind.case_submitted, case.patient_id, case, base_url)
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
