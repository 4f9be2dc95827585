"""The coordinator's dashboard, worked out in the database.

Filters, counts and the page of cases are SQL (``WHERE`` / ``GROUP BY`` / keyset ``LIMIT``);
the people, studies and matching a page shows are loaded in one batch for that page. The number
of statements per request does not grow with the number of cases (see docs/scale.md, "Lists").
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, or_
from sqlmodel import Session, col, select

from portal import access, pagination
from portal.access import Principal
from portal.accounts.models import User
from portal.cases import service as cases_service
from portal.cases.deadlines import ACTIVE_STATUSES
from portal.cases.models import Case, CaseStatus
from portal.intake import service as intake_service
from portal.intake.models import DicomInstance, DicomSeries, DicomStudy
from portal.pagination import PageRequest
from reviewers.deadlines import DeadlineState
from reviewers.matching import Candidate, CaseNeeds, MatchResult, match_specialists
from reviewers.models import CaseAssignment

DUE_SOON_HOURS = 24
"""As ``portal.cases.service.deadline_state``: the same hours make the same states."""
TRIAGE_SHOWN = 10
"""The triage queue shows its oldest cases, matched; the rest are a filter away."""


@dataclass(frozen=True)
class CaseFilters:
    status: CaseStatus | None = None
    deadline: DeadlineState | None = None
    specialist: uuid.UUID | None = None
    search: str | None = None
    """Part of a reference or subject (stored in clear; clinical text is sealed)."""


@dataclass(frozen=True)
class ImageSummary:
    studies: int
    instances: int


def deadline_state_sql(now: datetime) -> ColumnElement[str | None]:
    """The case's deadline state as SQL, agreeing with ``reviewers.deadlines.deadline_state``."""
    running = and_(col(Case.status).in_(list(ACTIVE_STATUSES)), col(Case.due_at).is_not(None))
    return case(
        (and_(running, col(Case.paused_at).is_not(None)), DeadlineState.paused.value),
        (and_(running, col(Case.due_at) < now), DeadlineState.overdue.value),
        (
            and_(running, col(Case.due_at) <= now + timedelta(hours=DUE_SOON_HOURS)),
            DeadlineState.due_soon.value,
        ),
        (running, DeadlineState.on_track.value),
        else_=None,
    )


def _conditions(
    principal: Principal, filters: CaseFilters, now: datetime
) -> list[ColumnElement[bool]]:
    found = [access.case_visibility(principal)]
    if filters.status is not None:
        found.append(col(Case.status) == filters.status)
    if filters.deadline is not None:
        found.append(deadline_state_sql(now) == filters.deadline.value)
    if filters.specialist is not None:
        found.append(col(Case.assigned_specialist_id) == filters.specialist)
    if filters.search:
        pattern = "%" + _escape_like(filters.search.strip()) + "%"
        found.append(
            or_(
                col(Case.reference).ilike(pattern, escape="\\"),
                col(Case.subject).ilike(pattern, escape="\\"),
            )
        )
    return found


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def counts_by_status(*, session: Session, principal: Principal) -> dict[str, int]:
    """How many visible cases stand in each status (one ``GROUP BY``)."""
    rows = session.exec(
        select(Case.status, func.count())
        .where(access.case_visibility(principal))
        .group_by(col(Case.status))
    ).all()
    return {str(status): count for status, count in rows}


def counts_by_deadline(*, session: Session, principal: Principal, now: datetime) -> dict[str, int]:
    """How many visible cases with a running deadline stand in each state (one ``GROUP BY``)."""
    state = deadline_state_sql(now).label("state")
    rows = session.exec(
        select(state, func.count())
        .where(access.case_visibility(principal))
        .where(col(Case.status).in_(list(ACTIVE_STATUSES)))
        .where(col(Case.due_at).is_not(None))
        .group_by(state)
    ).all()
    return {str(name): count for name, count in rows if name is not None}


def page_of_cases(
    *,
    session: Session,
    principal: Principal,
    filters: CaseFilters,
    page: PageRequest,
    now: datetime,
) -> tuple[list[Case], str | None]:
    """One page of the visible cases matching ``filters``, newest first."""
    query = select(Case).where(*_conditions(principal, filters, now))
    ordered = pagination.after(query, cases_service.NEWEST_FIRST, page, descending=True)
    return pagination.cut(session.exec(ordered).all(), page, lambda c: (c.created_at, c.id))


def triage_queue(*, session: Session, principal: Principal, limit: int) -> list[Case]:
    """The cases waiting for a coordinator to choose a specialist, oldest first."""
    return list(
        session.exec(
            select(Case)
            .where(access.case_visibility(principal))
            .where(col(Case.status) == CaseStatus.triage)
            .order_by(col(Case.created_at), col(Case.id))
            .limit(limit)
        ).all()
    )


@dataclass(frozen=True)
class PatientName:
    """Who a case's account says the patient is (the columns the dashboard shows and checks)."""

    full_name: str
    date_of_birth: date | None


def patient_names(*, session: Session, cases: list[Case]) -> dict[uuid.UUID, PatientName]:
    """The patients of these cases, in one query of the columns shown."""
    ids = {item.patient_id for item in cases}
    if not ids:
        return {}
    rows = session.exec(
        select(User.id, User.full_name, col(User.date_of_birth)).where(col(User.id).in_(ids))
    )
    return {user_id: PatientName(name, born) for user_id, name, born in rows}


@dataclass(frozen=True)
class StudyFacts:
    """What the dashboard needs of a case's studies: who they name, and their modalities."""

    patient_name: str | None
    patient_birth_date: str | None
    modalities: str


def studies_of(*, session: Session, case_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[StudyFacts]]:
    """The distinct names, birth dates and modalities in these cases' studies, in one query
    (a case with hundreds of studies of one patient gives one row)."""
    found: dict[uuid.UUID, list[StudyFacts]] = defaultdict(list)
    if case_ids:
        rows = session.exec(
            select(
                DicomStudy.case_id,
                DicomStudy.patient_name,
                DicomStudy.patient_birth_date,
                DicomStudy.modalities,
            )
            .where(col(DicomStudy.case_id).in_(case_ids))
            .distinct()
        )
        for case_id, name, birth_date, modalities in rows:
            found[case_id].append(StudyFacts(name, birth_date, modalities))
    return found


def image_summary(*, session: Session, case_ids: list[uuid.UUID]) -> dict[uuid.UUID, ImageSummary]:
    """Studies and instances per case, counted by the database (one aggregate query)."""
    if not case_ids:
        return {}
    rows = session.exec(
        select(
            DicomStudy.case_id,
            func.count(func.distinct(DicomStudy.id)),
            # The series id, not the instance's: counted from the index alone.
            func.count(col(DicomInstance.series_id)),
        )
        .join(DicomSeries, col(DicomSeries.study_id) == col(DicomStudy.id), isouter=True)
        .join(DicomInstance, col(DicomInstance.series_id) == col(DicomSeries.id), isouter=True)
        .where(col(DicomStudy.case_id).in_(case_ids))
        .group_by(col(DicomStudy.case_id))
    ).all()
    return {case_id: ImageSummary(studies, instances) for case_id, studies, instances in rows}


def identity_flags(
    *,
    principal: Principal,
    cases: list[Case],
    patients: dict[uuid.UUID, PatientName],
    studies: dict[uuid.UUID, list[StudyFacts]],
) -> set[uuid.UUID]:
    """Cases whose images name someone else than the account (or another birth date)."""
    return {
        item.id
        for item in cases
        if studies.get(item.id)
        and item.patient_id in patients
        and access.may(principal, item, "case.identity.check")
        and intake_service.identity_check(patients[item.patient_id], studies[item.id]).mismatch
    }


def rank_all(
    *,
    session: Session,
    cases: list[Case],
    studies: dict[uuid.UUID, list[StudyFacts]],
    pool: Sequence[Candidate],
    now: datetime,
) -> dict[uuid.UUID, MatchResult]:
    """Matching for each of ``cases`` against one read of the specialists (not one per case)."""
    if not cases:
        return {}
    offered: dict[uuid.UUID, set[uuid.UUID]] = defaultdict(set)
    for case_id, specialist_id in session.exec(
        select(CaseAssignment.case_id, CaseAssignment.specialist_id).where(
            col(CaseAssignment.case_id).in_([item.id for item in cases])
        )
    ):
        offered[case_id].add(specialist_id)
    results = {}
    for item in cases:
        listed = [study.modalities for study in studies.get(item.id, [])]
        modalities = {code for text in listed for code in text.split(",") if code}
        needs = CaseNeeds(
            case_id=item.id,
            patient_id=item.patient_id,
            body_region=item.body_region,
            modalities=frozenset(modalities),
            language=item.language,
            due=item.due_at or now,
            now=now,
        )
        results[item.id] = match_specialists(needs, pool, excluded=frozenset(offered[item.id]))
    return results
