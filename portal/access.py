"""Who may see and do what. The one module that decides; everything else asks it.

Deny by default: a permission not granted below is refused, and a case outside the caller's
visibility is reported exactly like a case that does not exist (404), so ids reveal nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, true
from sqlmodel import Session, select

from portal.accounts.models import Role
from portal.cases.models import Case
from portal.errors import Forbidden, NotFound


@dataclass(frozen=True)
class Principal:
    """The signed-in caller."""

    user_id: uuid.UUID
    role: Role
    session_id: uuid.UUID | None = None


PERMISSIONS: dict[str, frozenset[Role]] = {
    "case.create": frozenset({Role.patient}),
    "case.list": frozenset(Role),
    "audit.read": frozenset({Role.coordinator, Role.admin}),
    "users.manage": frozenset({Role.admin}),
    "specialists.read": frozenset({Role.coordinator, Role.admin}),
    "specialists.manage": frozenset({Role.coordinator, Role.admin}),
    "case.assign": frozenset({Role.coordinator, Role.admin}),
}


def is_allowed(principal: Principal, permission: str) -> bool:
    return principal.role in PERMISSIONS.get(permission, frozenset())


def require(principal: Principal, permission: str) -> None:
    """Raise ``Forbidden`` unless the caller's role holds ``permission``."""
    if not is_allowed(principal, permission):
        raise Forbidden()


def case_visibility(principal: Principal) -> ColumnElement[bool]:
    """SQL condition selecting the cases this caller may see."""
    match principal.role:
        case Role.coordinator | Role.admin:
            return true()
        case Role.patient:
            return Case.patient_id == principal.user_id  # type: ignore[return-value]
        case Role.specialist:
            return Case.assigned_specialist_id == principal.user_id  # type: ignore[return-value]
    return false()


def may_see_case(principal: Principal, case: Case) -> bool:
    match principal.role:
        case Role.coordinator | Role.admin:
            return True
        case Role.patient:
            return case.patient_id == principal.user_id
        case Role.specialist:
            return case.assigned_specialist_id == principal.user_id
    return False


def is_case_owner(principal: Principal, case: Case) -> bool:
    return principal.role == Role.patient and case.patient_id == principal.user_id


def visible_case(*, session: Session, principal: Principal, case_id: uuid.UUID) -> Case:
    """The case, if this caller may see it; otherwise ``NotFound`` as if it did not exist."""
    case = session.exec(
        select(Case).where(Case.id == case_id).where(case_visibility(principal))
    ).first()
    if case is None:
        raise NotFound("Case not found.")
    return case


def owned_case(*, session: Session, principal: Principal, case_id: uuid.UUID) -> Case:
    """The case, if the caller is the patient who owns it; staff get 403, strangers 404."""
    case = visible_case(session=session, principal=principal, case_id=case_id)
    if not is_case_owner(principal, case):
        raise Forbidden("Only the patient who opened this case can do this.")
    return case
