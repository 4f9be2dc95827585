"""Specialist profiles: what each one reads, their languages, capacity and availability."""

from __future__ import annotations

import statistics
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Subquery, func
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import Select

from portal import access, pagination
from portal.access import Principal
from portal.accounts.models import Role, User
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.cases.deadlines import ACTIVE_STATUSES
from portal.cases.models import BodyRegion, Case
from portal.db import utcnow
from portal.errors import NotFound
from portal.i18n import _
from portal.pagination import PageRequest
from reviewers.matching import Candidate
from reviewers.models import (
    CaseAssignment,
    ListedSpecialist,
    OfferStatus,
    SpecialistProfile,
    SpecialistProfileUpdate,
    SpecialistPublic,
)
from reviewers.vocabulary import Specialty

TURNAROUND_WINDOW = timedelta(days=180)
FIRST_PAGE = PageRequest()


def profile_for(*, session: Session, user: User) -> SpecialistProfile:
    """The specialist's profile, created empty (reads nothing yet) on first use."""
    profile = session.get(SpecialistProfile, user.id)
    if profile is None:
        profile = SpecialistProfile(user_id=user.id, languages=[user.language])
        session.add(profile)
        session.flush()
    return profile


def active_case_counts(*, session: Session) -> dict[uuid.UUID, int]:
    """How many cases each specialist holds now (offered, in review, waiting for answers)."""
    load = _active_cases()
    rows = session.exec(select(load.c.specialist_id, load.c.cases)).all()
    return {specialist: count for specialist, count in rows if specialist is not None}


def _active_cases() -> Subquery:
    """Specialist id → cases held now, as a subquery (one index-only ``GROUP BY``)."""
    return (
        select(
            col(Case.assigned_specialist_id).label("specialist_id"),
            func.count().label("cases"),
        )
        .where(col(Case.status).in_(list(ACTIVE_STATUSES)))
        .where(col(Case.assigned_specialist_id).is_not(None))
        .group_by(col(Case.assigned_specialist_id))
        .subquery("load")
    )


def turnaround_hours(*, session: Session, now: datetime) -> dict[uuid.UUID, float]:
    """Median hours from offer to delivered opinion per specialist, over recent cases."""
    rows = session.exec(
        select(CaseAssignment.specialist_id, CaseAssignment.offered_at, CaseAssignment.completed_at)
        .where(CaseAssignment.status == OfferStatus.completed)
        .where(col(CaseAssignment.completed_at) >= now - TURNAROUND_WINDOW)
    ).all()
    hours: dict[uuid.UUID, list[float]] = defaultdict(list)
    for specialist_id, offered_at, completed_at in rows:
        if completed_at is not None:
            hours[specialist_id].append((completed_at - offered_at).total_seconds() / 3600)
    return {specialist_id: statistics.median(values) for specialist_id, values in hours.items()}


def _absences(profile: SpecialistProfile) -> tuple[tuple[date, date], ...]:
    return tuple(
        (date.fromisoformat(item["start"]), date.fromisoformat(item["end"]))
        for item in profile.absences
    )


def candidates(*, session: Session, now: datetime) -> list[Candidate]:
    """Every active specialist account with its profile, load and recent turnaround."""
    rows = session.exec(_with_profiles()).all()
    load = active_case_counts(session=session)
    return _pool(rows, load, turnaround_hours(session=session, now=now))


def _pool(
    rows: Sequence[tuple[User, SpecialistProfile | None]],
    load: dict[uuid.UUID, int],
    turnaround: dict[uuid.UUID, float],
) -> list[Candidate]:
    """The matching candidates among ``rows``: active accounts with a stored profile."""
    return [
        _candidate(user, profile, load, turnaround)
        for user, profile in rows
        if profile is not None and user.is_active
    ]


def _candidate(
    user: User,
    profile: SpecialistProfile,
    load: dict[uuid.UUID, int],
    turnaround: dict[uuid.UUID, float],
) -> Candidate:
    return Candidate(
        specialist_id=user.id,
        specialties=frozenset(Specialty(value) for value in profile.specialties),
        body_regions=frozenset(BodyRegion(value) for value in profile.body_regions),
        modalities=frozenset(profile.modalities),
        languages=frozenset(profile.languages),
        max_active_cases=profile.max_active_cases,
        active_cases=load.get(user.id, 0),
        available=profile.available,
        absences=_absences(profile),
        recent_turnaround_hours=turnaround.get(user.id),
    )


@dataclass(frozen=True)
class Team:
    """The specialists as a coordinator's page needs them, from one read."""

    roster: list[SpecialistPublic]
    """Every specialist by name, with profile and load (pickers, the workload table)."""
    candidates: list[Candidate]
    """The active specialists with a profile, for matching (:func:`candidates`)."""

    def names(self) -> dict[uuid.UUID, str]:
        """Every specialist's name by id (whom matching mentions is among them)."""
        return {member.id: member.full_name for member in self.roster}


def team(*, session: Session, principal: Principal, now: datetime) -> Team:
    """Every specialist by name (pickers, the workload table) and the matching pool
    (:func:`candidates`), from two queries (accounts with profiles and load, turnaround)."""
    access.require(principal, "specialists.read")
    held = _active_cases()
    rows_and_load = session.exec(
        select(User, SpecialistProfile, held.c.cases)
        .join(SpecialistProfile, col(SpecialistProfile.user_id) == col(User.id), isouter=True)
        .join(held, held.c.specialist_id == col(User.id), isouter=True)
        .where(User.role == Role.specialist)
        .order_by(*BY_NAME)
    ).all()
    rows = [(user, profile) for user, profile, _cases in rows_and_load]
    load = {user.id: int(cases) for user, _profile, cases in rows_and_load if cases}
    turnaround = turnaround_hours(session=session, now=now)
    return Team(
        roster=[
            describe(
                user=user, profile=profile or blank_profile(user), active_cases=load.get(user.id, 0)
            )
            for user, profile in rows
        ],
        candidates=_pool(rows, load, turnaround),
    )


def describe(*, user: User, profile: SpecialistProfile, active_cases: int) -> SpecialistPublic:
    return SpecialistPublic(
        id=user.id,
        full_name=user.full_name,
        email=user.email,
        is_active=user.is_active,
        specialties=profile.specialties,
        body_regions=profile.body_regions,
        modalities=profile.modalities,
        languages=profile.languages,
        credentials=profile.credentials,
        max_active_cases=profile.max_active_cases,
        available=profile.available,
        public_listing=profile.public_listing,
        absences=profile.absences,
        active_cases=active_cases,
    )


PUBLIC_LISTING_LIMIT = 48


def listed_publicly(*, session: Session) -> list[ListedSpecialist]:
    """The active specialists who opted in to the public page, by name (one query, bounded)."""
    rows = session.exec(
        select(User, SpecialistProfile)
        .join(SpecialistProfile, col(SpecialistProfile.user_id) == col(User.id))
        .where(
            User.role == Role.specialist,
            col(User.is_active),
            col(SpecialistProfile.public_listing),
        )
        .order_by(*BY_NAME)
        .limit(PUBLIC_LISTING_LIMIT)
    ).all()
    return [
        ListedSpecialist(
            full_name=user.full_name,
            credentials=profile.credentials,
            specialties=profile.specialties,
            modalities=profile.modalities,
            languages=profile.languages or [user.language],
        )
        for user, profile in rows
    ]


BY_NAME = (col(User.full_name), col(User.id))


def written_languages(*, session: Session) -> list[str]:
    """The languages the active specialists write opinions in (what a patient may ask for),
    from one narrow query: each active specialist's profile languages, or else their
    account's language (a profile never edited writes in that)."""
    rows = session.exec(
        select(User.language, SpecialistProfile.languages)
        .join(SpecialistProfile, col(SpecialistProfile.user_id) == col(User.id), isouter=True)
        .where(User.role == Role.specialist, col(User.is_active))
    ).all()
    found: set[str] = set()
    for account_language, languages in rows:
        found.update(languages if languages is not None else [account_language])
    return sorted(found)


def _with_profiles() -> Select[User, SpecialistProfile]:
    """Specialist accounts with their profiles (None for one never edited), one query."""
    return (
        select(User, SpecialistProfile)
        .join(SpecialistProfile, col(SpecialistProfile.user_id) == col(User.id), isouter=True)
        .where(User.role == Role.specialist)
    )


def _describe_rows(
    session: Session, rows: Sequence[tuple[User, SpecialistProfile | None]]
) -> list[SpecialistPublic]:
    load = active_case_counts(session=session)
    return [
        describe(
            user=user,
            profile=profile or blank_profile(user),
            active_cases=load.get(user.id, 0),
        )
        for user, profile in rows
    ]


def blank_profile(user: User) -> SpecialistProfile:
    """What a specialist without a stored profile reads: nothing yet (not saved)."""
    return SpecialistProfile(user_id=user.id, languages=[user.language])


def list_specialists(
    *, session: Session, principal: Principal, ctx: AuditContext, page: PageRequest = FIRST_PAGE
) -> tuple[list[SpecialistPublic], str | None]:
    """One page of the specialist accounts with their profiles and current load, by name.

    Two queries (accounts with profiles, load per specialist), and nothing is written but the
    audit record: a profile is stored when the account is made or first edited.
    """
    access.require(principal, "specialists.read")
    query = pagination.after(_with_profiles(), BY_NAME, page)
    rows, next_cursor = pagination.cut(
        session.exec(query).all(), page, lambda row: (row[0].full_name, row[0].id)
    )
    result = _describe_rows(session, rows)
    audit_service.record_read(
        session=session, ctx=ctx, action="specialist.list", details={"count": len(result)}
    )
    session.commit()
    return result, next_cursor


def _specialist(session: Session, specialist_id: uuid.UUID) -> User:
    user = session.get(User, specialist_id)
    if user is None or user.role != Role.specialist:
        raise NotFound(_("Specialist not found."))
    return user


def read_specialist(
    *, session: Session, principal: Principal, specialist_id: uuid.UUID
) -> SpecialistPublic:
    access.require(principal, "specialists.read")
    user = _specialist(session, specialist_id)
    profile = session.get(SpecialistProfile, user.id) or blank_profile(user)
    load = active_case_counts(session=session)
    session.commit()
    return describe(user=user, profile=profile, active_cases=load.get(user.id, 0))


def update_profile(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    specialist_id: uuid.UUID,
    data: SpecialistProfileUpdate,
) -> SpecialistPublic:
    """A coordinator or admin changes what a specialist reads, their capacity or absences."""
    access.require(principal, "specialists.manage")
    user = _specialist(session, specialist_id)
    profile = profile_for(session=session, user=user)
    changed = apply_profile(profile, data)
    session.add(profile)
    audit_service.record(
        session=session,
        ctx=ctx,
        action="specialist.update",
        entity_type="user",
        entity_id=user.id,
        details={"fields": ",".join(sorted(changed))},
    )
    session.commit()
    load = active_case_counts(session=session)
    return describe(user=user, profile=profile, active_cases=load.get(user.id, 0))


def apply_profile(profile: SpecialistProfile, data: SpecialistProfileUpdate) -> set[str]:
    """Copy the given fields onto ``profile``; returns the names of the fields set."""
    given = data.model_dump(exclude_unset=True, mode="json")
    for name, value in given.items():
        if value is None:
            continue
        if name in {"specialties", "body_regions"}:
            value = sorted(set(value))
        setattr(profile, name, value)
    profile.updated_at = utcnow()
    return {name for name, value in given.items() if value is not None}
