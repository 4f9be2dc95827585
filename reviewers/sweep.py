"""The sweep: unanswered offers move on, deadlines warn once, mail goes out.

Run by ``portal sweep`` (cron) and every ``sweep_interval_seconds`` inside the server. Several
sweeps may run at once: each item is claimed under a row lock (``SKIP LOCKED`` on PostgreSQL;
SQLite's write transactions are exclusive anyway) and re-checked after the claim, so an offer
is timed out once and a warning is sent once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from portal.accounts.models import User
from portal.audit import service as audit_service
from portal.audit.service import SYSTEM
from portal.cases.deadlines import ACTIVE_STATUSES
from portal.cases.models import Case, CaseEvent
from portal.cases.timeline import seal_note
from portal.db import utcnow
from portal.i18n import N_
from portal.notifications import service as notifications
from portal.notifications.models import NotificationKind
from portal.objects.texts import bind_vault
from portal.settings import Settings
from reviewers import assignment, deadlines
from reviewers.deadlines import DeadlineState
from reviewers.models import CaseAssignment, OfferStatus
from storage.vault import Vault

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    timed_out: int = 0
    due_soon: int = 0
    overdue: int = 0

    def __str__(self) -> str:
        return (
            f"{self.timed_out} offer(s) timed out, {self.due_soon} case(s) due soon, "
            f"{self.overdue} case(s) overdue"
        )


def sweep(
    *, engine: Engine, vault: Vault, settings: Settings, now: datetime | None = None
) -> SweepReport:
    """One pass over offers and deadlines; each item commits on its own."""
    now = now or utcnow()
    report = SweepReport()
    with Session(engine) as session:
        offers = session.exec(
            select(CaseAssignment.id)
            .where(CaseAssignment.status == OfferStatus.offered)
            .where(col(CaseAssignment.respond_by) <= now)
        ).all()
        running = cases_needing_notice(
            session=session,
            now=now,
            due_soon_hours=settings.due_soon_hours,
            limit=settings.sweep_batch,
        )
    for offer_id in offers:
        with bind_vault(Session(engine), vault) as session:
            if _time_out(session, settings, offer_id, now):
                report.timed_out += 1
    for case_id in running:
        with bind_vault(Session(engine), vault) as session:
            state = _warn(session, settings, case_id, now)
            if state == DeadlineState.due_soon:
                report.due_soon += 1
            elif state == DeadlineState.overdue:
                report.overdue += 1
    if report.timed_out or report.due_soon or report.overdue:
        log.info(
            "sweep done",
            extra={
                "timed_out": report.timed_out,
                "due_soon": report.due_soon,
                "overdue": report.overdue,
            },
        )
    return report


def cases_needing_notice(
    *, session: Session, now: datetime, due_soon_hours: int, limit: int | None = None
) -> Sequence[uuid.UUID]:
    """Running cases whose deadline state changed and was not yet acted on, chosen in SQL.

    Overdue (past ``due_at``) without an overdue notice, or due within ``due_soon_hours``
    without any notice: the same rule as ``_warn`` (``deadlines.deadline_state``), so a case
    far from its deadline, or already warned, is not even loaded. The earliest deadlines come
    first; ``limit`` bounds one pass (the rest waits for the next).
    """
    overdue = and_(
        col(Case.due_at) < now,
        or_(
            col(Case.deadline_notice).is_(None),
            col(Case.deadline_notice) != DeadlineState.overdue.value,
        ),
    )
    due_soon = and_(
        col(Case.due_at) <= now + timedelta(hours=due_soon_hours),
        col(Case.deadline_notice).is_(None),
    )
    return session.exec(
        select(Case.id)
        .where(col(Case.status).in_(list(ACTIVE_STATUSES)))
        .where(col(Case.due_at).is_not(None))
        .where(col(Case.paused_at).is_(None))
        .where(or_(overdue, due_soon))
        .order_by(col(Case.due_at), col(Case.id))
        .limit(limit)
    ).all()


def _time_out(session: Session, settings: Settings, offer_id: uuid.UUID, now: datetime) -> bool:
    offer = session.exec(
        select(CaseAssignment)
        .where(CaseAssignment.id == offer_id)
        .where(CaseAssignment.status == OfferStatus.offered)
        .with_for_update(skip_locked=True)
    ).first()
    if offer is None:
        return False  # answered meanwhile, or another sweep holds it
    case = session.exec(
        select(Case).where(Case.id == offer.case_id).with_for_update(skip_locked=True)
    ).first()
    if case is None:
        session.rollback()
        return False
    if case.assigned_specialist_id != offer.specialist_id:
        # The case moved on without this offer being closed; close it quietly.
        offer.status = OfferStatus.withdrawn
        offer.responded_at = now
        session.add(offer)
        session.commit()
        return False
    assignment.time_out(
        session=session, case=case, offer=offer, ctx=SYSTEM, settings=settings, now=now
    )
    session.commit()
    return True


def _warn(
    session: Session, settings: Settings, case_id: uuid.UUID, now: datetime
) -> DeadlineState | None:
    case = session.exec(
        select(Case).where(Case.id == case_id).with_for_update(skip_locked=True)
    ).first()
    if case is None or case.status not in ACTIVE_STATUSES or case.paused_at is not None:
        session.rollback()
        return None
    state = deadlines.deadline_state(case.due_at, now, due_soon_hours=settings.due_soon_hours)
    if (
        state not in {DeadlineState.due_soon, DeadlineState.overdue}
        or case.deadline_notice == state
    ):
        session.rollback()
        return None
    if state == DeadlineState.due_soon and case.deadline_notice == DeadlineState.overdue:
        session.rollback()
        return None
    case.deadline_notice = state.value
    session.add(case)
    event = CaseEvent(
        case_id=case.id,
        at=now,
        actor_role="system",
        from_status=case.status,
        to_status=case.status,
    )
    session.add(event)
    seal_note(
        session=session,
        event=event,
        note=N_("The opinion is due soon.")
        if state == DeadlineState.due_soon
        else N_("The opinion is overdue."),
    )
    audit_service.record(
        session=session,
        ctx=SYSTEM,
        action=f"case.{state.value}",
        entity_type="case",
        entity_id=case.id,
        case_id=case.id,
    )
    if state == DeadlineState.overdue:
        notifications.notify_coordinators(
            session=session,
            kind=NotificationKind.case_overdue,
            case=case,
            base_url=settings.base_url,
        )
    elif case.assigned_specialist_id is not None:
        specialist = session.get(User, case.assigned_specialist_id)
        if specialist is not None and specialist.is_active:
            notifications.notify(
                session=session,
                kind=NotificationKind.due_soon,
                recipient=specialist,
                case=case,
                base_url=settings.base_url,
            )
    session.commit()
    return state
