"""Matching a case to a specialist: filters with reasons, score, tie-break, explanations."""

from __future__ import annotations

import random
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from portal.cases.models import BodyRegion
from reviewers.matching import (
    Candidate,
    CaseNeeds,
    Filter,
    MatchResult,
    best_specialty,
    match_specialists,
    required_modalities,
)
from reviewers.vocabulary import Specialty

NOW = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)  # a Monday
DUE = datetime(2025, 3, 17, 9, 0, tzinfo=UTC)
PATIENT = uuid.UUID(int=999)


def sid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


def spine_case(**changes: object) -> CaseNeeds:
    case = CaseNeeds(
        case_id=uuid.UUID(int=5000),
        patient_id=PATIENT,
        body_region=BodyRegion.spine,
        modalities=frozenset({"CT"}),
        language="ru",
        due=DUE,
        now=NOW,
    )
    return replace(case, **changes)  # type: ignore[arg-type]


def specialist(n: int, **changes: object) -> Candidate:
    """A Russian-speaking spine surgeon reading MR and CT, 2 of 8 cases, 52 h turnaround."""
    candidate = Candidate(
        specialist_id=sid(n),
        specialties=frozenset({Specialty.spine_surgery}),
        body_regions=frozenset({BodyRegion.spine}),
        modalities=frozenset({"MR", "CT"}),
        languages=frozenset({"ru", "en"}),
        max_active_cases=8,
        active_cases=2,
        available=True,
        absences=(),
        recent_turnaround_hours=52.0,
    )
    return replace(candidate, **changes)  # type: ignore[arg-type]


def cardiologist(n: int, **changes: object) -> Candidate:
    base = specialist(
        n,
        specialties=frozenset({Specialty.cardiology}),
        body_regions=frozenset({BodyRegion.heart, BodyRegion.chest}),
        active_cases=0,
        recent_turnaround_hours=20.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def reasons_of(result: MatchResult, specialist_id: uuid.UUID) -> dict[Filter, str]:
    for rejection in result.rejected:
        if rejection.specialist_id == specialist_id:
            return {reason.filter: reason.text for reason in rejection.reasons}
    raise AssertionError(f"{specialist_id} was not rejected")


def test_russian_spine_ct_case_goes_to_the_russian_speaking_spine_specialist() -> None:
    russian_spine = specialist(1, active_cases=6, recent_turnaround_hours=120.0)
    russian_cardiologist = cardiologist(2)
    english_spine = specialist(3, languages=frozenset({"en"}), active_cases=0)

    result = match_specialists(spine_case(), [russian_cardiologist, english_spine, russian_spine])

    assert result.chosen is not None
    assert result.chosen.specialist_id == russian_spine.specialist_id
    assert not result.needs_translation
    assert [r.specialist_id for r in result.ranked] == [russian_spine.specialist_id]
    assert reasons_of(result, sid(2)) == {
        Filter.region: "does not cover spine (covers chest and heart)"
    }
    assert reasons_of(result, sid(3)) == {Filter.language: "does not speak ru (speaks en)"}
    assert result.near_misses == ()


def test_cardiologist_declaring_the_spine_still_loses_on_fit() -> None:
    spine = specialist(1, active_cases=7, recent_turnaround_hours=200.0)
    odd_cardiologist = cardiologist(2, body_regions=frozenset({BodyRegion.spine}))

    result = match_specialists(spine_case(), [odd_cardiologist, spine])

    assert [r.specialist_id for r in result.ranked] == [sid(1), sid(2)]
    assert result.ranked[1].breakdown.fit == 0.0
    assert result.ranked[1].explanation.startswith("cardiology (not a usual specialty for spine), ")


def test_primary_fit_outranks_related_fit_whatever_the_load() -> None:
    busy_slow_surgeon = specialist(1, max_active_cases=8, active_cases=7)
    busy_slow_surgeon = replace(busy_slow_surgeon, recent_turnaround_hours=500.0)
    idle_fast_orthopaedist = specialist(
        2,
        specialties=frozenset({Specialty.orthopaedics}),
        active_cases=0,
        recent_turnaround_hours=1.0,
    )

    result = match_specialists(spine_case(), [idle_fast_orthopaedist, busy_slow_surgeon])

    assert result.chosen is not None and result.chosen.specialist_id == sid(1)
    assert result.ranked[0].breakdown.fit == 1.0
    assert result.ranked[1].breakdown.fit == 0.5


@pytest.mark.parametrize(
    ("changes", "excluded", "expected_filter", "expected_text"),
    [
        ({"available": False}, frozenset(), Filter.unavailable, "not taking new cases"),
        (
            {"absences": ((date(2025, 3, 8), date(2025, 3, 10)),)},
            frozenset(),
            Filter.absent,
            "away 2025-03-08 to 2025-03-10, which covers today",
        ),
        (
            {"absences": ((date(2025, 3, 17), date(2025, 3, 28)),)},
            frozenset(),
            Filter.absent,
            "away 2025-03-17 to 2025-03-28, which covers the due date 2025-03-17",
        ),
        (
            {"active_cases": 8},
            frozenset(),
            Filter.capacity,
            "at capacity: 8/8 active cases",
        ),
        (
            {"body_regions": frozenset({BodyRegion.head, BodyRegion.neck})},
            frozenset(),
            Filter.region,
            "does not cover spine (covers head and neck)",
        ),
        ({"modalities": frozenset({"MR"})}, frozenset(), Filter.modality, "does not read CT"),
        ({"specialist_id": PATIENT}, frozenset(), Filter.patient, "is the patient of this case"),
        (
            {},
            frozenset({sid(1)}),
            Filter.excluded,
            "already offered this case (declined or timed out)",
        ),
    ],
)
def test_each_filter_rejects_with_its_reason(
    changes: dict[str, object],
    excluded: frozenset[uuid.UUID],
    expected_filter: Filter,
    expected_text: str,
) -> None:
    failing = replace(specialist(1), **changes)  # type: ignore[arg-type]
    fallback = specialist(2, active_cases=5)

    result = match_specialists(spine_case(), [failing, fallback], excluded=excluded)

    assert result.chosen is not None and result.chosen.specialist_id == sid(2)
    assert reasons_of(result, failing.specialist_id) == {expected_filter: expected_text}


def test_every_failed_filter_is_reported_in_a_stable_order() -> None:
    hopeless = cardiologist(
        1, available=False, active_cases=8, modalities=frozenset(), languages=frozenset()
    )

    result = match_specialists(spine_case(), [hopeless], excluded=frozenset({sid(1)}))

    (rejection,) = result.rejected
    assert [reason.filter for reason in rejection.reasons] == [
        Filter.excluded,
        Filter.unavailable,
        Filter.capacity,
        Filter.region,
        Filter.modality,
        Filter.language,
    ]
    assert rejection.reasons[-1].text == "does not speak ru (speaks nothing declared)"


def test_absence_inside_the_window_but_not_today_or_on_the_due_date_is_no_bar() -> None:
    short_leave = specialist(1, absences=((date(2025, 3, 12), date(2025, 3, 13)),))
    back_yesterday = specialist(2, absences=((date(2025, 3, 1), date(2025, 3, 9)),))

    result = match_specialists(spine_case(), [short_leave, back_yesterday])

    assert {r.specialist_id for r in result.ranked} == {sid(1), sid(2)}
    assert result.rejected == ()


def test_modalities_require_every_image_code_but_ignore_reports() -> None:
    ct_only = specialist(1, modalities=frozenset({"CT"}))
    both = specialist(2, modalities=frozenset({"CT", "MR"}), active_cases=6)

    result = match_specialists(
        spine_case(modalities=frozenset({"MR", "CT", "SR"})), [ct_only, both]
    )

    assert result.chosen is not None and result.chosen.specialist_id == sid(2)
    assert reasons_of(result, sid(1)) == {Filter.modality: "does not read MR"}
    assert required_modalities(["ct", "SR", "KO", "XC", "MR", ""]) == ("MR", "CT", "OT")


def test_documents_only_case_needs_no_modality() -> None:
    reads_nothing = specialist(1, modalities=frozenset(), recent_turnaround_hours=None)

    result = match_specialists(spine_case(modalities=frozenset()), [reads_nothing])

    assert result.chosen is not None
    assert result.chosen.explanation == (
        "spine surgery, speaks ru, 2/8 active cases, no turnaround history yet"
    )


def test_language_fallback_chooses_among_the_rest_and_flags_translation() -> None:
    english_spine = specialist(1, languages=frozenset({"en", "de"}))
    english_busy = specialist(2, languages=frozenset({"en"}), active_cases=7)
    russian_heart = cardiologist(3)

    result = match_specialists(spine_case(), [english_busy, russian_heart, english_spine])

    assert result.chosen is not None and result.chosen.specialist_id == sid(1)
    assert result.needs_translation
    assert [r.specialist_id for r in result.ranked] == [sid(1), sid(2)]
    assert all(r.needs_translation and r.waived == (Filter.language,) for r in result.ranked)
    assert "needs translation from ru" in result.chosen.explanation
    assert "speaks" not in result.chosen.explanation
    assert [r.specialist_id for r in result.rejected] == [sid(3)]


def test_fluent_candidate_is_preferred_to_a_better_scoring_one_needing_translation() -> None:
    fluent_busy = specialist(1, active_cases=7, recent_turnaround_hours=150.0)
    english_idle = specialist(2, languages=frozenset({"en"}), active_cases=0)

    result = match_specialists(spine_case(language="RU"), [english_idle, fluent_busy])

    assert result.chosen is not None and result.chosen.specialist_id == sid(1)
    assert not result.needs_translation
    assert reasons_of(result, sid(2)) == {Filter.language: "does not speak ru (speaks en)"}


def test_excluded_specialists_are_never_chosen_even_when_best() -> None:
    best = specialist(1, active_cases=0, recent_turnaround_hours=10.0)
    others = [specialist(n, active_cases=n) for n in (2, 3)]

    result = match_specialists(spine_case(), [best, *others], excluded=frozenset({sid(1)}))

    assert result.chosen is not None and result.chosen.specialist_id == sid(2)
    assert sid(1) not in {r.specialist_id for r in result.ranked}
    assert sid(1) not in {r.specialist_id for r in result.near_misses}


def test_decline_chain_walks_the_ranking_then_translation_then_ends_with_none() -> None:
    candidates = [
        specialist(1, active_cases=3),
        specialist(2, active_cases=1),
        specialist(3, languages=frozenset({"en"}), active_cases=0),
        cardiologist(4),
    ]
    first = match_specialists(spine_case(), candidates)
    assert [r.specialist_id for r in first.ranked] == [sid(2), sid(1)]

    offered: list[uuid.UUID] = []
    translation: list[bool] = []
    excluded: frozenset[uuid.UUID] = frozenset()
    while (result := match_specialists(spine_case(), candidates, excluded=excluded)).chosen:
        assert result.chosen.specialist_id not in excluded
        offered.append(result.chosen.specialist_id)
        translation.append(result.needs_translation)
        excluded |= {result.chosen.specialist_id}
        assert len(offered) <= len(candidates)

    assert offered == [sid(2), sid(1), sid(3)]
    assert translation == [False, False, True]
    assert result.ranked == () and result.near_misses == ()
    assert {r.specialist_id for r in result.rejected} == {sid(1), sid(2), sid(3), sid(4)}


def test_same_inputs_in_any_order_give_the_same_result() -> None:
    candidates = [specialist(n, active_cases=n % 4) for n in range(1, 9)]
    candidates += [specialist(20, languages=frozenset({"en"})), cardiologist(21)]
    expected = match_specialists(spine_case(), candidates)

    shuffler = random.Random(1234)
    for _ in range(20):
        shuffled = candidates[:]
        shuffler.shuffle(shuffled)
        assert match_specialists(spine_case(), shuffled) == expected
    ties = [r.specialist_id for r in expected.ranked if r.breakdown.load == 1.0]
    assert ties == sorted(ties, key=str)


def test_lower_load_wins_when_fit_is_equal() -> None:
    busy = specialist(1, active_cases=5)
    light = specialist(2, active_cases=1)

    result = match_specialists(spine_case(), [busy, light])

    assert result.chosen is not None and result.chosen.specialist_id == sid(2)
    assert result.ranked[0].breakdown.load == pytest.approx(7 / 8)


def test_faster_turnaround_wins_when_fit_and_load_are_equal() -> None:
    slow = specialist(1, recent_turnaround_hours=120.0)
    fast = specialist(2, recent_turnaround_hours=30.0)
    unknown = specialist(3, recent_turnaround_hours=None)

    result = match_specialists(spine_case(), [slow, unknown, fast])

    assert [r.specialist_id for r in result.ranked] == [sid(2), sid(3), sid(1)]
    assert result.ranked[1].breakdown.turnaround == 0.5


def test_equal_scores_break_ties_by_lower_load_then_id() -> None:
    # 0.2 * 0.5 + 0.1 * 0.5 (unknown) == 0.2 * 0.75 + 0.1 * 0 (a week or slower)
    half_full_unknown = specialist(1, active_cases=4, recent_turnaround_hours=None)
    lighter_slow = specialist(2, active_cases=2, recent_turnaround_hours=400.0)
    twin = specialist(3, active_cases=2, recent_turnaround_hours=400.0)

    result = match_specialists(spine_case(), [twin, half_full_unknown, lighter_slow])

    assert result.ranked[0].score == pytest.approx(result.ranked[2].score)
    assert [r.specialist_id for r in result.ranked] == [sid(2), sid(3), sid(1)]


def test_explanation_names_specialty_modalities_language_load_and_turnaround() -> None:
    two_hats = specialist(1, specialties=frozenset({Specialty.cardiology, Specialty.spine_surgery}))

    result = match_specialists(spine_case(modalities=frozenset({"CT", "MR"})), [two_hats])

    assert result.chosen is not None
    assert result.chosen.specialty == Specialty.spine_surgery
    assert result.chosen.explanation == (
        "spine surgery, reads MR and CT, speaks ru, 2/8 active cases, median turnaround 52 h"
    )


def test_nobody_eligible_goes_to_triage_with_near_misses_for_the_coordinator() -> None:
    full_russian = specialist(1, active_cases=8)
    full_english = specialist(2, active_cases=9, languages=frozenset({"en"}))
    fuller_russian = specialist(3, max_active_cases=4, active_cases=4, recent_turnaround_hours=300)
    away = specialist(4, absences=((date(2025, 3, 1), date(2025, 3, 31)),))
    heart = cardiologist(5, active_cases=8)

    result = match_specialists(
        spine_case(), [heart, away, fuller_russian, full_english, full_russian]
    )

    assert result.chosen is None and result.ranked == ()
    assert not result.needs_translation
    assert [r.specialist_id for r in result.near_misses] == [sid(1), sid(3), sid(2)]
    assert result.suggestions == result.near_misses
    assert result.near_misses[0].waived == (Filter.capacity,)
    assert result.near_misses[2].waived == (Filter.capacity, Filter.language)
    assert result.near_misses[2].needs_translation
    assert result.near_misses[0].explanation.endswith(
        "8/8 active cases (at capacity), median turnaround 52 h"
    )
    assert [r.specialist_id for r in result.rejected] == [sid(n) for n in range(1, 6)]


def test_no_candidates_at_all() -> None:
    result = match_specialists(spine_case(), [])

    assert result == MatchResult(
        chosen=None, ranked=(), rejected=(), needs_translation=False, near_misses=()
    )


def test_best_specialty_prefers_fit_then_name() -> None:
    assert best_specialty([Specialty.cardiology, Specialty.neurosurgery], BodyRegion.spine) == (
        Specialty.neurosurgery,
        1.0,
    )
    assert best_specialty([Specialty.urology, Specialty.cardiology], BodyRegion.other) == (
        Specialty.cardiology,
        0.0,
    )
    assert best_specialty([], BodyRegion.spine) == (None, 0.0)


def test_naive_datetimes_and_duplicate_candidates_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        match_specialists(spine_case(now=datetime(2025, 3, 10, 9, 0)), [specialist(1)])
    with pytest.raises(ValueError, match="only once"):
        match_specialists(spine_case(), [specialist(1), specialist(1, active_cases=0)])


def test_dates_are_accepted_and_aware_datetimes_are_read_in_utc() -> None:
    # 01:00 in Moscow on the 11th is still the 10th in UTC: the absence starting on the
    # 11th does not cover "today".
    moscow_night = datetime.fromisoformat("2025-03-11T01:00:00+03:00")
    leaving = specialist(1, absences=((date(2025, 3, 11), date(2025, 3, 11)),))

    by_datetime = match_specialists(spine_case(now=moscow_night), [leaving])
    by_date = match_specialists(spine_case(now=date(2025, 3, 11), due=date(2025, 3, 18)), [leaving])

    assert by_datetime.chosen is not None
    assert by_date.chosen is None
    assert Filter.absent in reasons_of(by_date, sid(1))


@pytest.mark.parametrize(
    "changes",
    [
        {"active_cases": -1},
        {"max_active_cases": -1},
        {"recent_turnaround_hours": -1.0},
        {"recent_turnaround_hours": float("nan")},
        {"absences": ((date(2025, 3, 2), date(2025, 3, 1)),)},
    ],
)
def test_impossible_candidates_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        specialist(1, **changes)
