"""A case's status in the words its reader expects ("With your specialist — opinion due 3 Dec").

The words are English msgids translated into the language of the page or mail being made
(``portal.i18n``); the identifiers (``in_review``) never reach a reader.
"""

from __future__ import annotations

from datetime import datetime

from portal.accounts.models import Role
from portal.cases.models import Case, CaseStatus
from portal.i18n import N_, format_day, gettext
from portal.labels import word

S = CaseStatus

PATIENT_WORDS: dict[CaseStatus, str] = {
    S.draft: N_("Draft — add your files and submit when you are ready"),
    S.submitted: N_("Submitted — we are finding the right specialist"),
    S.triage: N_("Submitted — a coordinator is choosing your specialist"),
    S.assigned: N_("A specialist has been asked to review your case"),
    S.in_review: N_("With your specialist — opinion due %(due)s"),
    S.info_requested: N_("Your specialist has a question for you"),
    S.opinion_delivered: N_("Your second opinion is ready"),
    S.closed: N_("Closed"),
    S.cancelled: N_("Cancelled"),
}
STAFF_WORDS: dict[CaseStatus, str] = {
    S.draft: N_("Draft (not submitted yet)"),
    S.submitted: N_("Submitted"),
    S.triage: N_("Needs a specialist chosen by a coordinator"),
    S.assigned: N_("Offered — waiting for the specialist to accept"),
    S.in_review: N_("In review — due %(due)s"),
    S.info_requested: N_("Waiting for the patient's answer (clock paused)"),
    S.opinion_delivered: N_("Opinion delivered"),
    S.closed: N_("Closed"),
    S.cancelled: N_("Cancelled"),
}
PATIENT_STEPS: dict[CaseStatus, str] = {
    S.draft: N_("You opened the case"),
    S.submitted: N_("You submitted the case"),
    S.triage: N_("A coordinator is choosing your specialist"),
    S.assigned: N_("A specialist was asked to review your case"),
    S.in_review: N_("Your specialist started the review"),
    S.info_requested: N_("Your specialist asked you a question"),
    S.opinion_delivered: N_("Your second opinion was delivered"),
    S.closed: N_("The case was closed"),
    S.cancelled: N_("The case was cancelled"),
}
"""What each step of the timeline meant for the patient (they never see internal notes)."""


def _due(moment: datetime | None) -> str:
    return format_day(moment) if moment else gettext("soon")


def status_in_words(case: Case, *, role: Role) -> str:
    """One short sentence about where the case stands, for this reader."""
    words = PATIENT_WORDS if role == Role.patient else STAFF_WORDS
    return gettext(words[case.status], due=_due(case.due_at))


def step_in_words(status: CaseStatus | str, *, role: Role) -> str:
    """A timeline entry: what reaching ``status`` meant, in the reader's words."""
    if role != Role.patient:
        return word(status)
    try:
        return gettext(PATIENT_STEPS[CaseStatus(status)])
    except ValueError:
        return str(status).replace("_", " ")
