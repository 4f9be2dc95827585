"""What a coordinator sees when choosing a specialist by hand: ranked candidates with their
explanations, and why the others were left out."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

from sqlmodel import Session, SQLModel, col, select

from portal.accounts.models import User
from reviewers.matching import MatchResult, Ranked


class SuggestionPublic(SQLModel):
    specialist_id: uuid.UUID
    full_name: str
    score: float
    explanation: str
    fit: float
    load: float
    turnaround: float
    waived: list[str]
    """Filters this candidate fails but a coordinator may override (capacity, language)."""


class LeftOutPublic(SQLModel):
    specialist_id: uuid.UUID
    full_name: str
    reasons: list[str]


class SuggestionsPublic(SQLModel):
    suggestions: list[SuggestionPublic]
    automatic_choice: uuid.UUID | None
    """Whom matching would offer the case to now (None: nobody passes every filter)."""
    needs_translation: bool
    left_out: list[LeftOutPublic]


def _names(session: Session, results: Iterable[MatchResult]) -> dict[uuid.UUID, str]:
    """The names of every specialist the results mention, in one query."""
    ids: set[uuid.UUID] = set()
    for result in results:
        ids.update(item.specialist_id for item in result.suggestions)
        ids.update(item.specialist_id for item in result.rejected)
    if not ids:
        return {}
    return dict(
        session.exec(select(User.id, User.full_name).where(col(User.id).in_(list(ids)))).all()
    )


def top_suggestions(
    *,
    session: Session,
    results: Mapping[uuid.UUID, MatchResult],
    shown: int,
    names: Mapping[uuid.UUID, str] | None = None,
) -> dict[uuid.UUID, list[SuggestionPublic]]:
    """The ``shown`` best suggestions for each of several cases, named in one query for all
    (none when the caller already has the specialists' ``names``)."""
    best = {case_id: result.suggestions[:shown] for case_id, result in results.items()}
    if names is None:
        ids = {item.specialist_id for items in best.values() for item in items}
        names = (
            dict(session.exec(select(User.id, User.full_name).where(col(User.id).in_(ids))).all())
            if ids
            else {}
        )
    return {
        case_id: [_suggestion(item, names) for item in items] for case_id, items in best.items()
    }


def suggestions_public(
    *, session: Session, result: MatchResult, names: Mapping[uuid.UUID, str] | None = None
) -> SuggestionsPublic:
    """The suggestions and the left-out, named (by one query unless ``names`` are given)."""
    return _public(result, _names(session, [result]) if names is None else names)


def _suggestion(item: Ranked, names: Mapping[uuid.UUID, str]) -> SuggestionPublic:
    return SuggestionPublic(
        specialist_id=item.specialist_id,
        full_name=names.get(item.specialist_id, ""),
        score=round(item.score, 4),
        explanation=item.explanation,
        fit=round(item.breakdown.fit, 4),
        load=round(item.breakdown.load, 4),
        turnaround=round(item.breakdown.turnaround, 4),
        waived=[waived.value for waived in item.waived],
    )


def _public(result: MatchResult, names: Mapping[uuid.UUID, str]) -> SuggestionsPublic:
    return SuggestionsPublic(
        suggestions=[_suggestion(item, names) for item in result.suggestions],
        automatic_choice=result.chosen.specialist_id if result.chosen else None,
        needs_translation=result.needs_translation,
        left_out=[
            LeftOutPublic(
                specialist_id=item.specialist_id,
                full_name=names.get(item.specialist_id, ""),
                reasons=[reason.text for reason in item.reasons],
            )
            for item in result.rejected
        ],
    )
