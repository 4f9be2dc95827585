"""Specialist profiles: what each one reads, their languages, capacity and availability."""

from __future__ import annotations

import statistics
import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta

from sqlalchemy import func
from sqlmodel import Session, col, select

from portal import access
from portal.access import Principal
from portal.accounts.models import Role, User
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.cases.deadlines import ACTIVE_STATUSES
from portal.cases.models import BodyRegion, Case
from portal.db import utcnow
from portal.errors import NotFound
from reviewers.matching import Candidate
from reviewers.models import (
    CaseAssignment,
    OfferStatus,
    SpecialistProfile,
    SpecialistProfileUpdate,
    SpecialistPublic,
)
from reviewers.vocabulary import Specialty

TURNAROUND_WINDOW = timedelta(days=180)


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
    rows = session.exec(
        select(Case.assigned_specialist_id, func.count())
        .where(col(Case.status).in_(list(ACTIVE_STATUSES)))
        .where(col(Case.assigned_specialist_id).is_not(None))
        .group_by(col(Case.assigned_specialist_id))
    ).all()
    return {specialist: count for specialist, count in rows if specialist is not None}


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
    rows = session.exec(
        select(User, SpecialistProfile)
        .join(SpecialistProfile, col(SpecialistProfile.user_id) == col(User.id))
        .where(User.role == Role.specialist)
        .where(col(User.is_active).is_(True))
    ).all()
    load = active_case_counts(session=session)
    turnaround = turnaround_hours(session=session, now=now)
    return [
        Candidate(
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
        for user, profile in rows
    ]


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
        absences=profile.absences,
        active_cases=active_cases,
    )


def list_specialists(
    *, session: Session, principal: Principal, ctx: AuditContext
) -> list[SpecialistPublic]:
    """All specialist accounts with their profiles and current load, by name."""
    access.require(principal, "specialists.read")
    users = session.exec(
        select(User).where(User.role == Role.specialist).order_by(col(User.full_name))
    ).all()
    load = active_case_counts(session=session)
    result = [
        describe(
            user=user,
            profile=profile_for(session=session, user=user),
            active_cases=load.get(user.id, 0),
        )
        for user in users
    ]
    audit_service.record_read(
        session=session, ctx=ctx, action="specialist.list", details={"count": len(result)}
    )
    session.commit()
    return result


def _specialist(session: Session, specialist_id: uuid.UUID) -> User:
    user = session.get(User, specialist_id)
    if user is None or user.role != Role.specialist:
        raise NotFound("Specialist not found.")
    return user


def read_specialist(
    *, session: Session, principal: Principal, specialist_id: uuid.UUID
) -> SpecialistPublic:
    access.require(principal, "specialists.read")
    user = _specialist(session, specialist_id)
    profile = profile_for(session=session, user=user)
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
