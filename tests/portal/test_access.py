"""The one authority on permissions: relations to a case, actions, scoped tokens."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlmodel import Session, SQLModel, select

from portal import access
from portal.access import Principal, Relation
from portal.accounts.models import Role
from portal.cases.models import Case, CaseStatus
from portal.db import utcnow
from reviewers import workflow

OWNER, SPECIALIST, OTHER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def a_case(status: CaseStatus = CaseStatus.in_review) -> Case:
    return Case(
        id=uuid.uuid4(),
        reference="SO-TEST",
        patient_id=OWNER,
        assigned_specialist_id=SPECIALIST,
        status=status,
        subject="Back pain",
        body_region="spine",
        clinical_question="Is it a hemangioma?",
    )


def who(role: Role, user_id: uuid.UUID | None = None, **kw: uuid.UUID) -> Principal:
    return Principal(user_id=user_id or uuid.uuid4(), role=role, **kw)


@pytest.mark.parametrize(
    ("principal", "status", "relation"),
    [
        (who(Role.patient, OWNER), CaseStatus.draft, Relation.owner),
        (who(Role.patient, OTHER), CaseStatus.draft, None),
        (who(Role.specialist, SPECIALIST), CaseStatus.assigned, Relation.offered_specialist),
        (who(Role.specialist, SPECIALIST), CaseStatus.in_review, Relation.assigned_specialist),
        (who(Role.specialist, OTHER), CaseStatus.in_review, None),
        (who(Role.coordinator), CaseStatus.triage, Relation.coordinator),
        (who(Role.admin), CaseStatus.triage, Relation.admin),
        (None, CaseStatus.submitted, Relation.system),
        # Ids are per account, not per role: a specialist is never a case's owner.
        (who(Role.specialist, OWNER), CaseStatus.draft, None),
    ],
)
def test_relation_to_a_case(principal, status, relation):
    assert access.relation_to(principal, a_case(status)) == relation


def test_an_offered_specialist_may_answer_the_offer_but_not_write_the_opinion():
    specialist = who(Role.specialist, SPECIALIST)
    offered, accepted = a_case(CaseStatus.assigned), a_case(CaseStatus.in_review)
    assert access.may(specialist, offered, "case.offer.accept")
    assert not access.may(specialist, offered, "case.opinion.write")
    assert access.may(specialist, accepted, "case.opinion.write")
    assert not access.may(specialist, accepted, "case.offer.decline")


def test_only_the_owner_adds_files_and_staff_check_identity():
    case = a_case(CaseStatus.draft)
    assert access.may(who(Role.patient, OWNER), case, "case.files.add")
    for staff in (who(Role.coordinator), who(Role.admin), who(Role.specialist, SPECIALIST)):
        assert not access.may(staff, case, "case.files.add")
        assert not access.may(staff, case, "case.identity.check")  # a draft is the patient's
    submitted = a_case(CaseStatus.in_review)
    for staff in (who(Role.coordinator), who(Role.specialist, SPECIALIST)):
        assert access.may(staff, submitted, "case.identity.check")
    assert not access.may(who(Role.admin), submitted, "case.identity.check")
    assert access.may(who(Role.admin), submitted, "case.identity.check", break_glass=True)
    assert not access.may(who(Role.patient, OWNER), case, "case.identity.check")


CONTENT = ["case.content.read", "case.clinical.read", "case.dicomweb.read"]


@pytest.mark.parametrize(
    ("status", "submitted", "readers"),
    [
        (CaseStatus.draft, False, {"owner"}),
        (CaseStatus.cancelled, False, {"owner"}),  # withdrawn before it was ever sent
        (CaseStatus.cancelled, True, {"owner", "specialist", "coordinator"}),
        (CaseStatus.triage, True, {"owner", "coordinator"}),  # nobody assigned yet
        (CaseStatus.in_review, True, {"owner", "specialist", "coordinator"}),
        (CaseStatus.closed, True, {"owner", "specialist", "coordinator"}),
    ],
)
def test_content_is_the_owners_until_submitted_and_admins_never_without_break_glass(
    status, submitted, readers
):
    case = a_case(status)
    if status == CaseStatus.triage:
        case.assigned_specialist_id = None
    case.submitted_at = utcnow() if submitted else None
    callers = {
        "owner": who(Role.patient, OWNER),
        "specialist": who(Role.specialist, SPECIALIST),
        "coordinator": who(Role.coordinator),
        "admin": who(Role.admin),
    }
    for name, principal in callers.items():
        for action in CONTENT:
            assert access.may(principal, case, action) == (name in readers), (name, action)
        assert access.may(principal, case, "case.read") == (
            name != "specialist" or status != CaseStatus.triage
        )
    for action in CONTENT:
        assert access.may(callers["admin"], case, action, break_glass=True)
        assert not access.may(callers["coordinator"], case, "case.break_glass")
    assert access.may(callers["admin"], case, "case.break_glass")


def test_a_scoped_token_reads_images_of_its_case_only_and_nothing_else():
    case = a_case()
    token = who(Role.specialist, SPECIALIST, scope_case_id=case.id)
    assert access.may(token, case, "case.dicomweb.read")
    assert not access.may(token, case, "case.read")
    assert not access.may(token, case, "case.files.add")
    assert not access.may(token, case, "case.dicomweb.token")
    other = a_case()
    assert access.relation_to(token, other) is None
    assert not access.may(token, other, "case.dicomweb.read")
    assert not access.is_allowed(who(Role.admin, scope_case_id=case.id), "users.manage")


def test_a_scoped_token_never_exceeds_its_account():
    """A token made by a specialist who has since been taken off the case reads nothing."""
    case = a_case()
    case.assigned_specialist_id = OTHER
    token = who(Role.specialist, SPECIALIST, scope_case_id=case.id)
    assert not access.may(token, case, "case.dicomweb.read")


def test_a_misspelt_action_or_permission_is_an_error_not_a_refusal():
    with pytest.raises(ValueError, match="unknown case action"):
        access.may(who(Role.admin), a_case(), "case.reed")
    with pytest.raises(ValueError, match="unknown permission"):
        access.is_allowed(who(Role.admin), "user.manage")


def test_every_move_of_the_state_machine_is_made_by_known_actions():
    for move, actions in workflow.TRANSITIONS.items():
        assert actions, move
        assert actions <= set(access.CASE_ACTIONS), move


@pytest.mark.parametrize(
    ("principal", "to", "ever"),
    [
        (who(Role.patient), CaseStatus.submitted, True),
        (who(Role.specialist), CaseStatus.submitted, False),
        (who(Role.specialist), CaseStatus.opinion_delivered, True),
        (who(Role.coordinator), CaseStatus.opinion_delivered, False),
        (None, CaseStatus.triage, True),
        (who(Role.admin), CaseStatus.cancelled, True),
    ],
)
def test_who_may_ever_make_a_move(principal, to, ever):
    into = [a for (_, end), made_by in workflow.TRANSITIONS.items() if end == to for a in made_by]
    assert access.may_ever(principal, into) is ever


@pytest.mark.parametrize(
    "principal",
    [
        who(Role.patient, OWNER),
        who(Role.patient, OTHER),
        who(Role.specialist, SPECIALIST),
        who(Role.specialist, OTHER),
        who(Role.coordinator),
        who(Role.admin),
        who(Role.patient, OWNER, scope_case_id=uuid.UUID(int=1)),
        who(Role.coordinator, scope_case_id=uuid.UUID(int=2)),
        who(Role.specialist, SPECIALIST, scope_case_id=uuid.UUID(int=3)),
    ],
)
def test_the_sql_condition_and_the_check_on_a_loaded_case_agree(principal):
    """``case_for`` checks a case from the session in Python; lists filter in SQL."""
    engine = sa.create_engine("sqlite://")
    SQLModel.metadata.create_all(engine, tables=[Case.__table__])  # type: ignore[list-item]
    cases = [a_case() for _ in range(3)]
    for number, case in enumerate(cases, start=1):
        case.id, case.reference = uuid.UUID(int=number), f"SO-TEST-{number}"
    cases[1].patient_id, cases[2].assigned_specialist_id = OTHER, None
    with Session(engine) as session:
        session.add_all(cases)
        session.commit()
        in_sql = set(session.exec(select(Case.id).where(access.case_visibility(principal))))
        in_python = {case.id for case in cases if access.sees(principal, case)}
    assert in_sql == in_python
