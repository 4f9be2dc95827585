"""Deadlines: business days, urgent hours, pauses and the state a dashboard shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from portal.cases.models import Priority
from reviewers.deadlines import (
    DeadlineState,
    acceptance_deadline,
    deadline_state,
    due_at,
    extend_for_pause,
)


def utc(day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A moment in March 2025 (the 10th is a Monday, the 14th a Friday)."""
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC)


def test_friday_afternoon_standard_submission_is_due_next_friday_same_time() -> None:
    assert due_at(utc(14, 15, 30), Priority.standard) == utc(21, 15, 30)


@pytest.mark.parametrize(
    ("start", "due"),
    [
        (utc(10, 9), utc(17, 9)),  # Monday → Monday
        (utc(12, 23, 59), utc(19, 23, 59)),  # Wednesday → Wednesday across a weekend
        (utc(15, 11), utc(24, 0)),  # Saturday counts from Monday 00:00
        (utc(16, 23, 59), utc(24, 0)),  # so does Sunday
        (utc(17, 0), utc(24, 0)),  # and Monday 00:00 itself
    ],
)
def test_standard_deadlines_skip_weekends(start: datetime, due: datetime) -> None:
    assert due_at(start, Priority.standard) == due


def test_business_days_are_configurable() -> None:
    assert due_at(utc(14, 15), Priority.standard, standard_business_days=1) == utc(17, 15)
    assert due_at(utc(14, 15), Priority.standard, standard_business_days=10) == utc(28, 15)


def test_urgent_is_wall_clock_hours_weekends_included() -> None:
    assert due_at(utc(14, 15), Priority.urgent) == utc(16, 15)
    assert due_at(utc(15, 11), Priority.urgent, urgent_hours=24) == utc(16, 11)


def test_other_timezones_are_converted_and_business_days_follow_the_utc_calendar() -> None:
    # Saturday 01:00 in Moscow is still Friday 22:00 in UTC.
    moscow = timezone(timedelta(hours=3))
    start = datetime(2025, 3, 15, 1, 0, tzinfo=moscow)

    due = due_at(start, Priority.standard)

    assert due == utc(21, 22)
    assert due.tzinfo is UTC


def test_naive_datetimes_are_rejected_everywhere() -> None:
    naive = datetime(2025, 3, 14, 15, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        due_at(naive, Priority.standard)
    with pytest.raises(ValueError, match="timezone-aware"):
        extend_for_pause(utc(21), naive, utc(15))
    with pytest.raises(ValueError, match="timezone-aware"):
        deadline_state(naive, utc(14))
    with pytest.raises(ValueError, match="timezone-aware"):
        deadline_state(utc(21), naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        acceptance_deadline(naive)


@pytest.mark.parametrize(
    "durations", [{"standard_business_days": 0}, {"urgent_hours": 0}, {"urgent_hours": -48}]
)
def test_durations_must_be_positive(durations: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        due_at(utc(14), Priority.urgent, **durations)


def test_a_pause_moves_the_deadline_by_its_wall_clock_length() -> None:
    due = utc(21, 15)

    # 36 h 30 min paused.
    assert extend_for_pause(due, utc(17, 9), utc(18, 21, 30)) == utc(23, 3, 30)
    # Weekend days inside a pause count like any other.
    assert extend_for_pause(due, utc(14, 18), utc(17, 18)) == utc(24, 15)
    assert extend_for_pause(due, utc(17, 9), utc(17, 9)) == due


def test_a_pause_cannot_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        extend_for_pause(utc(21), utc(18), utc(17))


@pytest.mark.parametrize(
    ("now", "state"),
    [
        (utc(20, 14, 59), DeadlineState.on_track),  # 24 h + 1 min left
        (utc(20, 15), DeadlineState.due_soon),  # exactly 24 h left
        (utc(21, 15), DeadlineState.due_soon),  # the due moment itself is in time
        (utc(21, 15) + timedelta(microseconds=1), DeadlineState.overdue),
        (utc(30), DeadlineState.overdue),
    ],
)
def test_states_at_their_boundaries(now: datetime, state: DeadlineState) -> None:
    assert deadline_state(utc(21, 15), now) == state


def test_due_soon_window_is_configurable() -> None:
    assert deadline_state(utc(21, 15), utc(19, 15), due_soon_hours=48) == DeadlineState.due_soon
    assert deadline_state(utc(21, 15), utc(19, 15), due_soon_hours=0) == DeadlineState.on_track
    with pytest.raises(ValueError, match="negative"):
        deadline_state(utc(21, 15), utc(19, 15), due_soon_hours=-1)


def test_paused_cases_are_never_overdue_and_cases_without_deadline_have_no_state() -> None:
    assert deadline_state(utc(21, 15), utc(30), paused=True) == DeadlineState.paused
    assert deadline_state(utc(21, 15), utc(10), paused=True) == DeadlineState.paused
    assert deadline_state(None, utc(30)) is None
    assert deadline_state(None, utc(30), paused=True) is None


def test_acceptance_window() -> None:
    assert acceptance_deadline(utc(14, 15)) == utc(15, 15)
    assert acceptance_deadline(utc(14, 15), window_hours=72) == utc(17, 15)
    with pytest.raises(ValueError, match="at least 1"):
        acceptance_deadline(utc(14, 15), window_hours=0)
