"""A case's status in the words its reader expects ("With your specialist — opinion due 3 Dec")."""

from __future__ import annotations

from datetime import datetime

from portal.accounts.models import Role
from portal.cases.models import Case, CaseStatus

S = CaseStatus


def _due(moment: datetime | None) -> str:
    return f"{moment.day} {moment:%b}" if moment else "soon"


def status_in_words(case: Case, *, role: Role) -> str:
    """One short sentence about where the case stands, for this reader."""
    if role == Role.patient:
        return {
            S.draft: "Draft — add your files and submit when you are ready",
            S.submitted: "Submitted — we are finding the right specialist",
            S.triage: "Submitted — a coordinator is choosing your specialist",
            S.assigned: "A specialist has been asked to review your case",
            S.in_review: f"With your specialist — opinion due {_due(case.due_at)}",
            S.info_requested: "Your specialist has a question for you",
            S.opinion_delivered: "Your second opinion is ready",
            S.closed: "Closed",
            S.cancelled: "Cancelled",
        }[case.status]
    return {
        S.draft: "Draft (not submitted yet)",
        S.submitted: "Submitted",
        S.triage: "Needs a specialist chosen by a coordinator",
        S.assigned: "Offered — waiting for the specialist to accept",
        S.in_review: f"In review — due {_due(case.due_at)}",
        S.info_requested: "Waiting for the patient's answer (clock paused)",
        S.opinion_delivered: "Opinion delivered",
        S.closed: "Closed",
        S.cancelled: "Cancelled",
    }[case.status]
