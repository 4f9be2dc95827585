"""Who may see and do what. The one module that decides; everything else asks it.

Two questions are answered here and nowhere else:

* the caller's **relation** to a case (:func:`relation_to`): its owner, the specialist it is
  offered to, the specialist who accepted it, a coordinator, an admin, the system (matching
  and the sweep), or none;
* which relations may take each **action** on a case (:data:`CASE_ACTIONS`), and which roles
  hold each permission that is not about one case (:data:`ROLE_PERMISSIONS`).

Deny by default: an action not granted below is refused, and a case outside the caller's
visibility is reported exactly like a case that does not exist (404), so ids reveal nothing.
Rules about a case's *state* (files are added while it is a draft, a patient reads the opinion
once it is delivered) live with the domain; rules about *who* live here.

A case's **content** (files, records, images, DICOMweb, clinical text, the opinion) is read by
fewer than see the case (:data:`CONTENT_ACTIONS`): before submission by its owner alone, after
it by the case's specialists and coordinators too. Admins run accounts, not cases: they read
content only through a *break-glass* grant, asked for with a reason, audited and time-limited
(:func:`holds_break_glass`, ``portal.breakglass``).

A principal may be *scoped* to one case and to reading only: a DICOMweb token, or a patient's
share link for their own doctor (``reviewers.sharing``). It never holds more than the account
that made it holds now, on that one case, for the few reading actions its scope names.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, false, true
from sqlmodel import Session, col, select

from portal.accounts.models import Role
from portal.breakglass.models import BreakGlassGrant
from portal.cases.models import Case, CaseStatus
from portal.db import utcnow
from portal.errors import Forbidden, NotFound
from portal.i18n import N_, _

SCOPED_ACTIONS = frozenset({"case.dicomweb.read"})
"""All that a case-scoped DICOMweb token may do."""


@dataclass(frozen=True)
class Principal:
    """The signed-in caller (or a token acting for an account on one case)."""

    user_id: uuid.UUID
    role: Role
    session_id: uuid.UUID | None = None
    scope_case_id: uuid.UUID | None = None
    """Set for a case-scoped, read-only token: only this case, only ``scope_actions``."""
    scope_actions: frozenset[str] = SCOPED_ACTIONS
    """What a scoped principal may do (ignored when unscoped): :data:`SCOPED_ACTIONS` for a
    DICOMweb token, :data:`SHARE_ACTIONS` and perhaps :data:`SHARE_IMAGE_ACTIONS` for a share
    link."""


class Relation(StrEnum):
    owner = "owner"
    offered_specialist = "offered_specialist"
    assigned_specialist = "assigned_specialist"
    coordinator = "coordinator"
    admin = "admin"
    system = "system"


R = Relation
EVERYONE = frozenset({R.owner, R.offered_specialist, R.assigned_specialist, R.coordinator, R.admin})
SPECIALISTS = frozenset({R.offered_specialist, R.assigned_specialist})
COORDINATING = frozenset({R.coordinator, R.admin})
STAFF = SPECIALISTS | COORDINATING

COORDINATING_ROLES = frozenset({Role.coordinator, Role.admin})
"""Roles that see every case: coordinators and admins."""

CASE_ACTIONS: dict[str, frozenset[Relation]] = {
    # Reading.
    "case.read": EVERYONE,  # status, dates, people: what running the service needs
    "case.content.read": EVERYONE,  # files, images, records
    "case.clinical.read": EVERYONE,  # the question, history, questions and answers
    "case.identity.check": STAFF,  # does the name in the images match the account's?
    "case.opinion.read": EVERYONE,  # the patient's copy also waits for delivery (opinions)
    "case.opinion.read_draft": STAFF,
    "case.assignments.read": COORDINATING,
    "case.audit.read": COORDINATING,
    "case.break_glass": frozenset({R.admin}),  # ask for a grant to read the content
    "case.break_glass.read": frozenset({R.owner, R.coordinator, R.admin}),
    "case.dicomweb.read": EVERYONE,
    "case.images.read": EVERYONE,  # the built-in viewer's series, frames and thumbnails
    "case.dicomweb.token": frozenset({R.owner, R.assigned_specialist, R.coordinator}),
    "case.dicomweb.tokens.others": frozenset({R.coordinator}),  # list and revoke anyone's
    # The delivered opinion as a FHIR document (reviewers/fhir, docs/fhir.md); the patient's
    # copy also waits for delivery, as the opinion itself does.
    "case.fhir.read": frozenset({R.owner, R.assigned_specialist, R.coordinator}),
    # The patient's side.
    "case.consent": frozenset({R.owner}),
    "case.files.add": frozenset({R.owner}),  # multipart, tus and STOW-RS
    "case.submit": frozenset({R.owner}),
    "case.share": frozenset({R.owner}),  # links for the patient's own doctor (docs/sharing.md)
    "case.follow_up.ask": frozenset({R.owner}),
    "case.clarification.answer": frozenset({R.owner}),
    # The specialist's side.
    "case.offer.accept": frozenset({R.offered_specialist}),
    "case.offer.decline": frozenset({R.offered_specialist}),
    "case.clarification.ask": frozenset({R.assigned_specialist}),
    "case.follow_up.answer": frozenset({R.assigned_specialist}),
    "case.opinion.write": frozenset({R.assigned_specialist}),  # drafts, signing, addenda
    # From the opinion to treatment (reviewers/treatment, docs/treatment.md).
    "case.treatment.read": frozenset({R.owner, R.assigned_specialist, R.coordinator, R.admin}),
    "case.treatment.request": frozenset({R.owner}),
    "case.treatment.withdraw": frozenset({R.owner, R.coordinator}),  # cancel, close
    "case.treatment.answer": frozenset({R.coordinator}),  # take up, answer
    # Coordination.
    "case.assign": COORDINATING,
    "case.match": frozenset({R.system}),  # matching, offer timeouts
    "case.close": frozenset({R.owner, R.coordinator, R.admin}),
    "case.cancel": frozenset({R.owner, R.coordinator, R.admin}),
}

SHARE_ACTIONS = frozenset({"case.read", "case.opinion.read"})
"""What a share link's principal may do: see that the case exists and read its delivered
opinion (the page and the PDF)."""

SHARE_IMAGE_ACTIONS = frozenset({"case.images.read"})
"""Added to :data:`SHARE_ACTIONS` when the patient chose to share the images as well."""

CONTENT_ACTIONS = frozenset(
    {
        "case.content.read",
        "case.clinical.read",
        "case.identity.check",
        "case.opinion.read",
        "case.opinion.read_draft",
        "case.dicomweb.read",
        "case.images.read",
        "case.treatment.read",  # the patient's notes and the coordinator's answer
        "case.fhir.read",  # the whole case: opinion, question, studies, records
    }
)
"""Actions that show what is in a case; :func:`reads_content` narrows who may take them."""

CONTENT_BEFORE_SUBMISSION = frozenset({R.owner, R.system})
"""Who reads a case's content until it is submitted: it is the patient's alone till then."""

CONTENT_AFTER_SUBMISSION = frozenset({R.owner, R.system, *SPECIALISTS, R.coordinator})
"""Who reads it once submitted: those who give the opinion and those who run the case."""

BREAK_GLASS = frozenset({R.admin})
"""Who reads content only under a break-glass grant (in any state of the case)."""

ROLE_PERMISSIONS: dict[str, frozenset[Role]] = {
    "case.create": frozenset({Role.patient}),
    "cases.dashboard": COORDINATING_ROLES,  # every case, triage and workload at a glance
    "audit.read": COORDINATING_ROLES,
    "users.manage": frozenset({Role.admin}),
    "specialists.read": COORDINATING_ROLES,
    "specialists.manage": COORDINATING_ROLES,
    "treatment.guide.manage": COORDINATING_ROLES,  # conditions, options, prices, clinics
    "treatment.requests.read": frozenset({Role.coordinator}),  # every case's plan requests
}

_ROLE_RELATIONS: dict[Role, frozenset[Relation]] = {
    Role.patient: frozenset({R.owner}),
    Role.specialist: SPECIALISTS,
    Role.coordinator: frozenset({R.coordinator}),
    Role.admin: frozenset({R.admin}),
}

_REFUSALS: dict[str, str] = {
    "case.consent": N_("Only the patient who opened this case can do this."),
    "case.files.add": N_("Only the patient who opened this case can add files to it."),
    "case.submit": N_("Only the patient who opened this case can do this."),
    "case.share": N_("Only the patient who opened this case can share its opinion."),
    "case.offer.accept": N_(
        "Only the specialist this case is offered to can accept or decline it."
    ),
    "case.offer.decline": N_(
        "Only the specialist this case is offered to can accept or decline it."
    ),
    "case.opinion.write": N_("Only the specialist the case is assigned to can write its opinion."),
    "case.dicomweb.token": N_(
        "Only the case's patient, its specialist or a coordinator can do this."
    ),
    "case.fhir.read": N_("Only the case's patient, its specialist or a coordinator can do this."),
    "case.treatment.request": N_(
        "Only the patient who opened this case can request a treatment plan."
    ),
    "case.treatment.answer": N_("Only a coordinator can answer a treatment-plan request."),
}
_REFUSED = N_("You are not allowed to do this on this case.")
_UNSUBMITTED = N_("The case's content is private to its patient until the case is submitted.")
_CONTENT_REFUSALS: dict[Relation | None, str] = {
    R.admin: N_("Opening this case's content needs a break-glass request with a reason."),
}


def relation_to(principal: Principal | None, case: Case) -> Relation | None:
    """The caller's relation to ``case``, or ``None`` when it has none (the case is then
    invisible to it). A ``None`` principal is the system: matching and the sweep."""
    if principal is None:
        return R.system
    if principal.scope_case_id is not None and principal.scope_case_id != case.id:
        return None
    match principal.role:
        case Role.patient if case.patient_id == principal.user_id:
            return R.owner
        case Role.specialist if case.assigned_specialist_id == principal.user_id:
            offered = case.status == CaseStatus.assigned
            return R.offered_specialist if offered else R.assigned_specialist
        case Role.coordinator:
            return R.coordinator
        case Role.admin:
            return R.admin
    return None


def allows(relation: Relation | None, action: str) -> bool:
    """Whether ``relation`` may take ``action`` on a case.

    Raises
    ------
    ValueError
        ``action`` is not in :data:`CASE_ACTIONS` (a misspelt action must not pass unnoticed).
    """
    if action not in CASE_ACTIONS:
        raise ValueError(f"unknown case action {action!r}")
    return relation is not None and relation in CASE_ACTIONS[action]


def reads_content(relation: Relation | None, case: Case, *, break_glass: bool = False) -> bool:
    """Whether ``relation`` may read the content of ``case`` in its present state.

    ``break_glass`` says the caller holds a live break-glass grant on the case.
    """
    if relation in BREAK_GLASS:
        return break_glass
    unsent = case.status in {CaseStatus.draft, CaseStatus.cancelled}
    submitted = case.submitted_at is not None or not unsent
    readers = CONTENT_AFTER_SUBMISSION if submitted else CONTENT_BEFORE_SUBMISSION
    return relation in readers


def may(principal: Principal | None, case: Case, action: str, *, break_glass: bool = False) -> bool:
    """Whether this caller may take ``action`` on ``case`` now.

    ``break_glass``: the caller holds a live grant on the case (:func:`holds_break_glass`).
    """
    relation = relation_to(principal, case)
    permitted = allows(relation, action)
    if permitted and action in CONTENT_ACTIONS:
        permitted = reads_content(relation, case, break_glass=break_glass)
    if principal is None or principal.scope_case_id is None:
        return permitted
    return permitted and action in principal.scope_actions


def may_ever(principal: Principal | None, actions: Iterable[str]) -> bool:
    """Whether this caller's role could take any of ``actions`` on some case.

    Tells a move this caller may never make (403) from one it may make, but not in the
    case's present state (409).
    """
    held = frozenset({R.system}) if principal is None else _ROLE_RELATIONS[principal.role]
    return any(held & CASE_ACTIONS[action] for action in actions)


def granted(principal: Principal, case: Case, *, break_glass: bool = False) -> frozenset[str]:
    """Every action this caller may take on ``case`` (what a page offers them)."""
    return frozenset(
        action for action in CASE_ACTIONS if may(principal, case, action, break_glass=break_glass)
    )


def holds_break_glass(*, session: Session, principal: Principal, case_id: uuid.UUID) -> bool:
    """Whether this caller holds a live break-glass grant on the case (only admins may)."""
    if not _ROLE_RELATIONS[principal.role] & BREAK_GLASS or principal.scope_case_id is not None:
        return False
    live = session.exec(
        select(BreakGlassGrant.id)
        .where(BreakGlassGrant.case_id == case_id)
        .where(BreakGlassGrant.user_id == principal.user_id)
        .where(col(BreakGlassGrant.expires_at) > utcnow())
        .limit(1)
    ).first()
    return live is not None


def is_allowed(principal: Principal, permission: str) -> bool:
    """Whether the caller's role holds ``permission`` (not about any one case)."""
    if permission not in ROLE_PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    return principal.scope_case_id is None and principal.role in ROLE_PERMISSIONS[permission]


def may_read_event_note(principal: Principal, *, actor_role: str | None) -> bool:
    """Whether the caller reads the note of a timeline step: staff read every note (matching,
    reassignment and decline reasons are how they work); a patient reads only their own (a
    cancellation reason), never the staff's internal ones."""
    if principal.role != Role.patient:
        return True
    return actor_role == Role.patient.value


def require(principal: Principal, permission: str) -> None:
    """Raise ``Forbidden`` unless the caller's role holds ``permission``."""
    if not is_allowed(principal, permission):
        raise Forbidden()


def permits(*, session: Session, principal: Principal, case: Case, action: str) -> bool:
    """:func:`may`, counting a live break-glass grant the caller holds on ``case``."""
    if may(principal, case, action):
        return True
    return (
        action in CONTENT_ACTIONS
        and relation_to(principal, case) in BREAK_GLASS
        and holds_break_glass(session=session, principal=principal, case_id=case.id)
        and may(principal, case, action, break_glass=True)
    )


def case_visibility(principal: Principal) -> ColumnElement[bool]:
    """SQL condition selecting the cases this caller may see (those it has a relation to)."""
    match principal.role:
        case Role.coordinator | Role.admin:
            visible: ColumnElement[bool] = true()
        case Role.patient:
            visible = Case.patient_id == principal.user_id  # type: ignore[assignment]
        case Role.specialist:
            visible = Case.assigned_specialist_id == principal.user_id  # type: ignore[assignment]
        case _:
            return false()
    if principal.scope_case_id is not None:
        return and_(visible, Case.id == principal.scope_case_id)  # type: ignore[arg-type]
    return visible


def sees(principal: Principal, case: Case) -> bool:
    """:func:`case_visibility` for a case already loaded (the two must agree)."""
    match principal.role:
        case Role.coordinator | Role.admin:
            visible = True
        case Role.patient:
            visible = case.patient_id == principal.user_id
        case Role.specialist:
            visible = case.assigned_specialist_id == principal.user_id
        case _:
            return False
    return visible and principal.scope_case_id in (None, case.id)


def case_for(
    *, session: Session, principal: Principal, case_id: uuid.UUID, action: str = "case.read"
) -> Case:
    """The case, if this caller may see it and take ``action`` on it.

    Raises
    ------
    NotFound
        The case does not exist or the caller may not see it (indistinguishable).
    Forbidden
        The caller sees the case but may not take ``action``.
    """
    if CASE_ACTIONS[action] <= COORDINATING and not may_ever(principal, [action]):
        # Only roles that see every case may: refused by role first, saying nothing of the case.
        raise Forbidden(_REFUSALS.get(action, _REFUSED))
    # The session's identity map answers the second and later reads of a page's case.
    case = session.get(Case, case_id)
    if case is None or not sees(principal, case):
        raise NotFound(_("Case not found."))
    if permits(session=session, principal=principal, case=case, action=action):
        return case
    relation = relation_to(principal, case)
    if action in CONTENT_ACTIONS and allows(relation, action):
        raise Forbidden(_CONTENT_REFUSALS.get(relation, _UNSUBMITTED))
    raise Forbidden(_REFUSALS.get(action, _REFUSED))
