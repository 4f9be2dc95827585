"""Choose a specialist for a submitted case, and say why in plain words.

Pure functions over plain data: the caller loads specialists and the case, passes the
current time, and stores the result. Rules, weights and the tie-break are described in
docs/matching.md; the constants below are the normative values.
"""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

from portal.cases.models import BodyRegion
from reviewers.vocabulary import MODALITIES, Specialty

PRIMARY = 1.0
"""Fit of a specialty that is a usual reader of the region (spine → spine surgery)."""
RELATED = 0.5
"""Fit of a specialty that often helps with the region (spine → orthopaedics)."""

FIT_WEIGHT = 0.7
LOAD_WEIGHT = 0.2
TURNAROUND_WEIGHT = 0.1
"""Weights of the score. One fit level (0.5 x 0.7 = 0.35) outweighs everything load and
turnaround together can add (at most 0.3), so a primary specialist always ranks above a related
one; load and turnaround order specialists of equal fit."""

TURNAROUND_FAST_HOURS = 24.0
TURNAROUND_SLOW_HOURS = 168.0
"""A median turnaround at or under the first scores 1, at or over the second scores 0."""
TURNAROUND_UNKNOWN = 0.5
"""Turnaround score of a specialist with no history yet: neither rewarded nor penalised."""

NON_IMAGE_MODALITIES = frozenset(
    {"SR", "KO", "PR", "SEG", "REG", "DOC", "FID", "PLAN"}
    | {"RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD"}
)
"""Series that carry reports, annotations or plans, not images: nobody needs to declare them."""

_REGION_SPECIALTIES: dict[BodyRegion, tuple[str, str]] = {
    # region: (primary specialties, related specialties)
    BodyRegion.head: ("neuroradiology neurosurgery neurology",
                      "oncology radiation_oncology nuclear_medicine interventional_radiology"),
    BodyRegion.neck: ("neuroradiology",
                      "body_radiology oncology radiation_oncology nuclear_medicine"),
    BodyRegion.spine: ("spine_surgery neurosurgery neuroradiology",
                       "musculoskeletal_radiology orthopaedics neurology oncology"
                       " radiation_oncology interventional_radiology"),
    BodyRegion.chest: ("cardiothoracic_radiology pulmonology",
                       "body_radiology oncology radiation_oncology nuclear_medicine"),
    BodyRegion.heart: ("cardiology cardiothoracic_radiology",
                       "interventional_radiology nuclear_medicine"),
    BodyRegion.breast: ("breast_imaging", "oncology radiation_oncology nuclear_medicine"),
    BodyRegion.abdomen: ("body_radiology gastroenterology",
                         "urology oncology radiation_oncology interventional_radiology"
                         " nuclear_medicine"),
    BodyRegion.pelvis: ("body_radiology urology gynaecology",
                        "musculoskeletal_radiology orthopaedics oncology radiation_oncology"
                        " interventional_radiology"),
    BodyRegion.upper_limb: ("musculoskeletal_radiology orthopaedics",
                            "interventional_radiology oncology"),
    BodyRegion.lower_limb: ("musculoskeletal_radiology orthopaedics",
                            "interventional_radiology oncology"),
    BodyRegion.whole_body: ("nuclear_medicine oncology",
                            "body_radiology radiation_oncology musculoskeletal_radiology"),
    BodyRegion.other: ("", ""),
}  # fmt: skip
REGION_FIT: Mapping[BodyRegion, Mapping[Specialty, float]] = {
    region: {Specialty(name): RELATED for name in related.split()}
    | {Specialty(name): PRIMARY for name in primary.split()}
    for region, (primary, related) in _REGION_SPECIALTIES.items()
}
"""How relevant each specialty is to a region; a specialty not listed fits 0."""


class Filter(StrEnum):
    """The hard filters, in the order their reasons are reported."""

    excluded = "excluded"
    patient = "patient"
    unavailable = "unavailable"
    absent = "absent"
    capacity = "capacity"
    region = "region"
    modality = "modality"
    language = "language"


RELAXABLE = frozenset({Filter.capacity, Filter.language})
"""Filters a coordinator can reasonably override: candidates failing only these are suggested."""
_LANGUAGE_ONLY = frozenset({Filter.language})


@dataclass(frozen=True)
class Candidate:
    """A specialist as matching sees them (built by the caller from the database)."""

    specialist_id: uuid.UUID
    specialties: frozenset[Specialty]
    body_regions: frozenset[BodyRegion]
    modalities: frozenset[str]
    languages: frozenset[str]
    max_active_cases: int
    active_cases: int
    available: bool = True
    absences: tuple[tuple[date, date], ...] = ()
    recent_turnaround_hours: float | None = None

    def __post_init__(self) -> None:
        if self.max_active_cases < 0 or self.active_cases < 0:
            raise ValueError("case counts must not be negative")
        hours = self.recent_turnaround_hours
        if hours is not None and not (math.isfinite(hours) and hours >= 0):
            raise ValueError("recent turnaround must be a finite number of hours >= 0")
        if any(start > end for start, end in self.absences):
            raise ValueError("an absence must not end before it starts")


@dataclass(frozen=True)
class CaseNeeds:
    """What a case asks of its reader, and the dates that matter (UTC calendar days)."""

    case_id: uuid.UUID
    patient_id: uuid.UUID
    body_region: BodyRegion
    modalities: frozenset[str]
    language: str
    due: date | datetime
    """The opinion's deadline: absences covering its day disqualify."""
    now: date | datetime
    """The current time (or today's date): absences covering today disqualify."""


@dataclass(frozen=True)
class Reason:
    """Why a candidate failed one filter: a stable code and a sentence for the coordinator."""

    filter: Filter
    text: str


@dataclass(frozen=True)
class Rejection:
    """A candidate who may not be offered the case, with every filter they fail."""

    specialist_id: uuid.UUID
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class ScoreBreakdown:
    """The parts of a score, each in [0, 1], higher is better."""

    fit: float
    load: float
    turnaround: float


@dataclass(frozen=True)
class Ranked:
    """A candidate that may be offered the case, with its score and explanation."""

    specialist_id: uuid.UUID
    score: float
    """``FIT_WEIGHT * fit + LOAD_WEIGHT * load + TURNAROUND_WEIGHT * turnaround``."""
    breakdown: ScoreBreakdown
    specialty: Specialty | None
    """The candidate's best-fitting specialty for the region (None if they declare none)."""
    explanation: str
    waived: tuple[Filter, ...] = ()
    """Filters this candidate fails but that were relaxed to offer or suggest them."""

    @property
    def needs_translation(self) -> bool:
        return Filter.language in self.waived


@dataclass(frozen=True)
class MatchResult:
    """The chosen specialist (or ``None``: triage), the ranking and every rejection."""

    chosen: Ranked | None
    ranked: tuple[Ranked, ...]
    rejected: tuple[Rejection, ...]
    needs_translation: bool
    near_misses: tuple[Ranked, ...] = ()
    """When nobody can be offered the case: candidates failing only relaxable filters."""

    @property
    def suggestions(self) -> tuple[Ranked, ...]:
        """What a coordinator sees: the ranked candidates, else the near misses."""
        return self.ranked or self.near_misses


@dataclass(frozen=True)
class _Needs:
    """The case normalised once: calendar days, required image codes, language."""

    today: date
    due: date
    modalities: tuple[str, ...]
    language: str


def match_specialists(
    case: CaseNeeds,
    candidates: Sequence[Candidate],
    *,
    excluded: frozenset[uuid.UUID] = frozenset(),
) -> MatchResult:
    """Rank the specialists who may read ``case`` and choose the best.

    Parameters
    ----------
    case
        What the case needs and the dates that matter.
    candidates
        Every specialist who could be considered, in any order.
    excluded
        Specialists never to offer this case again (declined or timed out before).

    Returns
    -------
    MatchResult
        ``chosen`` is ``None`` when nobody passes the filters, even with translation; the
        coordinator then gets ``near_misses`` (see ``MatchResult.suggestions``).

    Raises
    ------
    ValueError
        Two candidates share an id, or a date is a naive datetime.
    """
    ids = [c.specialist_id for c in candidates]
    if len(set(ids)) != len(ids):
        raise ValueError("each specialist may appear only once among the candidates")
    needs = _Needs(
        today=_utc_day(case.now),
        due=_utc_day(case.due),
        modalities=required_modalities(case.modalities),
        language=case.language.strip().lower(),
    )
    assessed = [(c, _reasons(c, case, needs, excluded)) for c in candidates]
    pool = [(c, frozenset(r.filter for r in rs)) for c, rs in assessed]
    ranked = _rank([entry for entry in pool if not entry[1]], case, needs)
    if not ranked:  # nobody passes every filter: those who only lack the language, translated
        ranked = _rank([entry for entry in pool if entry[1] == _LANGUAGE_ONLY], case, needs)
    offered = {r.specialist_id for r in ranked}
    # A UUID's text is its number in fixed-width hex: ordering by either is the same.
    rejected = tuple(
        Rejection(c.specialist_id, rs)
        for c, rs in sorted(assessed, key=lambda pair: pair[0].specialist_id.int)
        if c.specialist_id not in offered
    )
    near_misses: tuple[Ranked, ...] = ()
    if not ranked:
        near_misses = _rank([entry for entry in pool if entry[1] <= RELAXABLE], case, needs)
    return MatchResult(
        chosen=ranked[0] if ranked else None,
        ranked=ranked,
        rejected=rejected,
        needs_translation=bool(ranked) and ranked[0].needs_translation,
        near_misses=near_misses,
    )


def required_modalities(codes: Iterable[str]) -> tuple[str, ...]:
    """The image modalities a reader must declare for a case with these series codes.

    Report-like series (``NON_IMAGE_MODALITIES``) need no reader; an image code outside the
    vocabulary (``XC``, ``OP``...) needs a reader of ``OT`` (other). The result follows the
    vocabulary's order, so explanations read "MR and CT".
    """
    wanted = {code.strip().upper() for code in codes} - NON_IMAGE_MODALITIES
    wanted = {code if code in MODALITIES else "OT" for code in wanted if code}
    return tuple(code for code in MODALITIES if code in wanted)


def best_specialty(
    specialties: Iterable[Specialty], region: BodyRegion
) -> tuple[Specialty | None, float]:
    """The specialty that fits ``region`` best and its fit (ties: alphabetical)."""
    table = REGION_FIT.get(region, {})
    ordered = sorted(specialties, key=lambda s: (-table.get(s, 0.0), s.value))
    if not ordered:
        return None, 0.0
    return ordered[0], table.get(ordered[0], 0.0)


def _reasons(
    candidate: Candidate, case: CaseNeeds, needs: _Needs, excluded: frozenset[uuid.UUID]
) -> tuple[Reason, ...]:
    reasons: list[Reason] = []
    if candidate.specialist_id in excluded:
        reasons.append(Reason(Filter.excluded, "already offered this case (declined or timed out)"))
    if candidate.specialist_id == case.patient_id:
        reasons.append(Reason(Filter.patient, "is the patient of this case"))
    if not candidate.available:
        reasons.append(Reason(Filter.unavailable, "not taking new cases"))
    absence = _absence_reason(candidate, needs)
    if absence:
        reasons.append(Reason(Filter.absent, absence))
    if candidate.active_cases >= candidate.max_active_cases:
        text = f"at capacity: {candidate.active_cases}/{candidate.max_active_cases} active cases"
        reasons.append(Reason(Filter.capacity, text))
    if case.body_region not in candidate.body_regions:
        covered = _regions_text(candidate.body_regions) or "no region"
        text = f"does not cover {_label(case.body_region)} (covers {covered})"
        reasons.append(Reason(Filter.region, text))
    declared = _upper(candidate.modalities)
    missing = [code for code in needs.modalities if code not in declared]
    if missing:
        reasons.append(Reason(Filter.modality, f"does not read {_join(missing)}"))
    spoken = _lower(candidate.languages)
    if needs.language not in spoken:
        listed = _join(sorted(spoken)) or "nothing declared"
        reasons.append(
            Reason(Filter.language, f"does not speak {needs.language} (speaks {listed})")
        )
    return tuple(reasons)


# Specialists share a few sets of regions, codes and languages: each is worded once.
@functools.cache
def _regions_text(regions: frozenset[BodyRegion]) -> str:
    return _join(sorted(_label(r) for r in regions))


@functools.cache
def _upper(codes: frozenset[str]) -> frozenset[str]:
    return frozenset(code.upper() for code in codes)


@functools.cache
def _lower(languages: frozenset[str]) -> frozenset[str]:
    return frozenset(lang.lower() for lang in languages)


def _absence_reason(candidate: Candidate, needs: _Needs) -> str | None:
    for start, end in sorted(candidate.absences):
        away = f"away {start.isoformat()} to {end.isoformat()}"
        if start <= needs.today <= end:
            return f"{away}, which covers today"
        if start <= needs.due <= end:
            return f"{away}, which covers the due date {needs.due.isoformat()}"
    return None


def _rank(
    pool: Iterable[tuple[Candidate, frozenset[Filter]]], case: CaseNeeds, needs: _Needs
) -> tuple[Ranked, ...]:
    """``pool``: each candidate with the filters it failed (waived for it here)."""
    entries = []
    for candidate, failed in pool:
        waived = tuple(f for f in Filter if f in failed) if failed else ()
        specialty, fit = best_specialty(candidate.specialties, case.body_region)
        breakdown = _breakdown(candidate, fit)
        score = (
            FIT_WEIGHT * breakdown.fit
            + LOAD_WEIGHT * breakdown.load
            + TURNAROUND_WEIGHT * breakdown.turnaround
        )
        explanation = _explain(candidate, specialty, fit, case.body_region, needs)
        ranked = Ranked(candidate.specialist_id, score, breakdown, specialty, explanation, waived)
        # Rounded so that equal scores reached by different float paths still tie.
        key = (len(waived), -round(score, 9), _load(candidate), str(candidate.specialist_id))
        entries.append((key, ranked))
    return tuple(ranked for _, ranked in sorted(entries, key=lambda entry: entry[0]))


def _breakdown(candidate: Candidate, fit: float) -> ScoreBreakdown:
    load = max(0.0, 1.0 - _load(candidate))
    hours = candidate.recent_turnaround_hours
    if hours is None:
        turnaround = TURNAROUND_UNKNOWN
    else:
        span = TURNAROUND_SLOW_HOURS - TURNAROUND_FAST_HOURS
        turnaround = min(1.0, max(0.0, (TURNAROUND_SLOW_HOURS - hours) / span))
    return ScoreBreakdown(fit=fit, load=load, turnaround=turnaround)


def _load(candidate: Candidate) -> float:
    if candidate.max_active_cases <= 0:
        return 1.0
    return candidate.active_cases / candidate.max_active_cases


def _explain(
    candidate: Candidate,
    specialty: Specialty | None,
    fit: float,
    region: BodyRegion,
    needs: _Needs,
) -> str:
    if specialty is None:
        parts = ["no specialty declared"]
    elif fit == 0.0:
        parts = [f"{specialty.label} (not a usual specialty for {_label(region)})"]
    else:
        parts = [specialty.label]
    if needs.modalities:
        parts.append(f"reads {_join(needs.modalities)}")
    if needs.language in _lower(candidate.languages):
        parts.append(f"speaks {needs.language}")
    else:
        parts.append(f"needs translation from {needs.language}")
    load = f"{candidate.active_cases}/{candidate.max_active_cases} active cases"
    if candidate.active_cases >= candidate.max_active_cases:
        load += " (at capacity)"
    parts.append(load)
    hours = candidate.recent_turnaround_hours
    if hours is None:
        parts.append("no turnaround history yet")
    else:
        parts.append(f"median turnaround {round(hours)} h")
    return ", ".join(parts)


def _utc_day(value: date | datetime) -> date:
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError("datetimes must be timezone-aware")
        return value.astimezone(UTC).date()
    return value


def _label(region: BodyRegion) -> str:
    return region.value.replace("_", " ")


def _join(words: Sequence[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"
