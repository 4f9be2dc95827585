"""Deadlines: when an opinion is due, how pauses move it, and how late a case is.

How late a case is (``deadline_state``) is a case fact, defined in ``portal/cases/deadlines.py``
(the case list shows it) and offered here too. Pure functions: the caller passes the current
time. Every datetime must be timezone-aware; results are in UTC, and business days are UTC
calendar days (see docs/matching.md).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from portal.cases.deadlines import DeadlineState, as_utc, deadline_state
from portal.cases.models import Priority

__all__ = ["DeadlineState", "acceptance_deadline", "deadline_state", "due_at", "extend_for_pause"]

_SATURDAY = 5
_DAY = timedelta(days=1)


def due_at(
    start: datetime,
    priority: Priority,
    *,
    standard_business_days: int = 5,
    urgent_hours: int = 48,
) -> datetime:
    """When the opinion on a case whose clock starts at ``start`` is due.

    Parameters
    ----------
    start
        When the clock starts (assignment or submission), timezone-aware.
    priority
        ``standard``: ``standard_business_days`` business days (Monday to Friday) later at the
        same time of day, weekends skipped; a start on a Saturday or Sunday counts from the
        following Monday 00:00. ``urgent``: ``urgent_hours`` wall-clock hours later, weekends
        included.

    Returns
    -------
    datetime
        The deadline, in UTC.

    Raises
    ------
    ValueError
        ``start`` is naive, or a duration is less than 1.
    """
    start = as_utc(start, "start")
    if standard_business_days < 1 or urgent_hours < 1:
        raise ValueError("deadline durations must be at least 1")
    if priority == Priority.urgent:
        return start + timedelta(hours=urgent_hours)
    if start.weekday() >= _SATURDAY:
        monday = start.date() + timedelta(days=7 - start.weekday())
        start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
    due = start
    for _ in range(standard_business_days):
        due += _DAY
        while due.weekday() >= _SATURDAY:
            due += _DAY
    return due


def extend_for_pause(due: datetime, paused_at: datetime, resumed_at: datetime) -> datetime:
    """Move ``due`` later by the wall-clock time the case was paused, weekends included.

    Raises
    ------
    ValueError
        A datetime is naive, or ``resumed_at`` is before ``paused_at``.
    """
    due, paused_at, resumed_at = (
        as_utc(due, "due"),
        as_utc(paused_at, "paused_at"),
        as_utc(resumed_at, "resumed_at"),
    )
    if resumed_at < paused_at:
        raise ValueError("a pause cannot end before it starts")
    return due + (resumed_at - paused_at)


def acceptance_deadline(offered_at: datetime, window_hours: int = 24) -> datetime:
    """When an offer made at ``offered_at`` lapses if the specialist has not answered.

    Raises
    ------
    ValueError
        ``offered_at`` is naive, or ``window_hours`` is less than 1.
    """
    if window_hours < 1:
        raise ValueError("window_hours must be at least 1")
    return as_utc(offered_at, "offered_at") + timedelta(hours=window_hours)
