"""The case state machine: every status change goes through ``transition``.

One table says which moves exist and who may make them; an illegal move raises ``Conflict``
(409) and changes nothing. Each move lands on the case timeline and in the audit trail.
"""

from __future__ import annotations

from sqlmodel import Session

from portal.access import Principal
from portal.accounts.models import Role
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.cases.models import Case, CaseEvent, CaseStatus
from portal.db import utcnow
from portal.errors import Conflict, Forbidden

S = CaseStatus
OWNER = "owner"
STAFF = frozenset({Role.coordinator, Role.admin})

# (from, to) -> who may: "owner" (the case's patient), a set of roles, or "system".
TRANSITIONS: dict[tuple[CaseStatus, CaseStatus], str | frozenset[Role]] = {
    (S.draft, S.submitted): OWNER,
    (S.draft, S.cancelled): OWNER,
    (S.submitted, S.cancelled): OWNER,
    (S.triage, S.cancelled): OWNER,
}


def _may(principal: Principal | None, case: Case, rule: str | frozenset[Role]) -> bool:
    if rule == OWNER:
        return (
            principal is not None
            and principal.role == Role.patient
            and case.patient_id == principal.user_id
        )
    if rule == "system":
        return principal is None
    return principal is not None and isinstance(rule, frozenset) and principal.role in rule


def transition(
    *,
    session: Session,
    case: Case,
    to: CaseStatus,
    principal: Principal | None,
    ctx: AuditContext,
    note: str | None = None,
) -> CaseEvent:
    """Move ``case`` to ``to`` if the table allows it for this caller (the caller commits)."""
    rule = TRANSITIONS.get((case.status, to))
    if rule is None:
        raise Conflict(
            f"A case that is {case.status.replace('_', ' ')} cannot become {to.replace('_', ' ')}."
        )
    if not _may(principal, case, rule):
        raise Forbidden("You are not allowed to change this case's status.")
    event = CaseEvent(
        case_id=case.id,
        actor_id=principal.user_id if principal else None,
        actor_role=principal.role if principal else "system",
        from_status=case.status,
        to_status=to,
        note=note,
    )
    previous = case.status
    case.status = to
    case.updated_at = utcnow()
    session.add_all([case, event])
    audit_service.record(
        session=session,
        ctx=ctx,
        action="case.status",
        entity_type="case",
        entity_id=case.id,
        case_id=case.id,
        details={"from": previous.value, "to": to.value},
    )
    return event
