"""Where a case stands against its deadline: the case facts the case list shows.

Computing *when* an opinion is due, and moving it, is the review workflow's
(``reviewers/deadlines.py``); how a case stands against a due time it already has is a fact
about the case, read by the case list (``service.case_summary``) and by the reviewers' sweep.
Pure functions: the caller passes the current time; every datetime must be timezone-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum

from portal.cases.models import CaseStatus

ACTIVE_STATUSES = frozenset({CaseStatus.assigned, CaseStatus.in_review, CaseStatus.info_requested})
"""A specialist is busy with a case in one of these (its deadline runs)."""


class DeadlineState(StrEnum):
    on_track = "on_track"
    due_soon = "due_soon"
    overdue = "overdue"
    paused = "paused"
    """The case waits for the patient: the clock is stopped, so it is neither late nor soon."""


def deadline_state(
    due: datetime | None,
    now: datetime,
    *,
    due_soon_hours: int = 24,
    paused: bool = False,
) -> DeadlineState | None:
    """How a case stands against its deadline at ``now``.

    Returns
    -------
    DeadlineState or None
        ``None`` when the case has no deadline; ``paused`` while it waits for the patient;
        ``overdue`` once ``now`` is past ``due`` (``due`` itself is still in time);
        ``due_soon`` when at most ``due_soon_hours`` remain; ``on_track`` otherwise.

    Raises
    ------
    ValueError
        A datetime is naive, or ``due_soon_hours`` is negative.
    """
    now = as_utc(now, "now")
    if due_soon_hours < 0:
        raise ValueError("due_soon_hours must not be negative")
    if due is None:
        return None
    due = as_utc(due, "due")
    if paused:
        return DeadlineState.paused
    if now > due:
        return DeadlineState.overdue
    if due - now <= timedelta(hours=due_soon_hours):
        return DeadlineState.due_soon
    return DeadlineState.on_track


def as_utc(value: datetime, name: str) -> datetime:
    """``value`` in UTC; refuses a naive datetime (``name`` says which)."""
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), not naive")
    return value.astimezone(UTC)
