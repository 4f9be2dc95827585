"""Where a case stands for its patient: the steps so far, and the one thing to do next.

The case page shows the steps as a stepper (details → consent → files → submitted → with the
specialist → opinion ready) and one "what to do next" card above everything else. Both are
worked out here from facts the page already has, so the page and its tests agree on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from portal.cases.models import CaseStatus
from portal.i18n import N_, gettext

S = CaseStatus
UNDER_REVIEW = {S.assigned, S.in_review, S.info_requested}
ANSWERED = {S.opinion_delivered, S.closed}


class StepState(StrEnum):
    done = "done"
    current = "current"
    todo = "todo"


@dataclass(frozen=True)
class Step:
    key: str
    label: str
    state: StepState


STEP_LABELS = (
    ("details", N_("Details")),
    ("consent", N_("Consent")),
    ("files", N_("Files")),
    ("submitted", N_("Submitted")),
    ("review", N_("With the specialist")),
    ("opinion", N_("Opinion ready")),
)


class NextStep(StrEnum):
    """The one thing the patient should do (or know) now; the page words each one."""

    consent = "consent"
    files = "files"
    submit = "submit"
    wait_for_specialist = "wait_for_specialist"
    wait_for_opinion = "wait_for_opinion"
    answer_question = "answer_question"
    read_opinion = "read_opinion"
    closed = "closed"
    cancelled = "cancelled"


def _done(status: CaseStatus, *, consent_given: bool, has_files: bool) -> dict[str, bool]:
    submitted = status not in {S.draft, S.cancelled}
    return {
        "details": True,
        "consent": consent_given or submitted,
        "files": has_files or submitted,
        "submitted": submitted,
        "review": status in ANSWERED,
        "opinion": status in ANSWERED,
    }


def steps(status: CaseStatus, *, consent_given: bool, has_files: bool) -> list[Step]:
    """The stepper: each step done, current (the first not done) or still to come."""
    done = _done(status, consent_given=consent_given, has_files=has_files)
    current = next((key for key, _label in STEP_LABELS if not done[key]), None)
    result = []
    for key, label in STEP_LABELS:
        state = (
            StepState.done
            if done[key]
            else StepState.current
            if key == current and status != S.cancelled
            else StepState.todo
        )
        result.append(Step(key=key, label=gettext(label), state=state))
    return result


def next_step(
    status: CaseStatus, *, consent_given: bool, has_files: bool, questions_waiting: int
) -> NextStep:
    """What the patient should do now (or, when it is someone else's turn, what happens)."""
    if status == S.draft:
        if not consent_given:
            return NextStep.consent
        return NextStep.submit if has_files else NextStep.files
    if questions_waiting or status == S.info_requested:
        return NextStep.answer_question
    if status in {S.submitted, S.triage, S.assigned}:
        return NextStep.wait_for_specialist
    if status == S.in_review:
        return NextStep.wait_for_opinion
    if status == S.opinion_delivered:
        return NextStep.read_opinion
    return NextStep.cancelled if status == S.cancelled else NextStep.closed
