"""What the case page and the coordinator's dashboard show, gathered from the services.

No rules live here: every value comes from a service that already decided who may see it.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from fastapi import Request, Response
from sqlmodel import Session, col, select

from portal import access
from portal.accounts.models import User
from portal.audit import service as audit_service
from portal.breakglass import service as break_glass_service
from portal.cases import service as cases_service
from portal.cases import wording
from portal.cases.consent import CONSENT_TEXTS, CURRENT_VERSION
from portal.cases.models import Case, CaseStatus
from portal.db import utcnow
from portal.deps import SignedInCaller
from portal.dicomweb import tokens
from portal.errors import NotFound
from portal.intake import service as intake_service
from portal.intake.models import DicomStudy
from portal.settings import Settings
from portal.web.templating import render
from reviewers import assignment, opinions, questions, specialists
from reviewers.models import QuestionKind
from reviewers.suggestions import suggestions_public

DONE = {
    "accepted": "You have accepted the case.",
    "declined": "You declined the case; it has been passed on.",
    "asked": "Your question has been sent.",
    "answered": "Your answer has been sent.",
    "assigned": "The case has been assigned.",
    "saved": "The draft is saved.",
    "signed": "The opinion is signed and delivered to the patient.",
    "addendum": "The addendum has been added.",
}


def case_context(
    *, session: Session, settings: Settings, caller: SignedInCaller, case_id: uuid.UUID
) -> dict[str, Any]:
    """Everything the case page shows this caller."""
    principal = caller.principal
    case = cases_service.read_case(
        session=session, principal=principal, ctx=caller.ctx, case_id=case_id
    )
    break_glass = access.holds_break_glass(session=session, principal=principal, case_id=case.id)
    may = access.granted(principal, case, break_glass=break_glass)
    content = "case.content.read" in may
    files = (
        intake_service.list_files(
            session=session, principal=principal, ctx=caller.ctx, case_id=case.id
        )
        if content
        else []
    )
    studies = (
        intake_service.studies(
            session=session, principal=principal, ctx=caller.ctx, case_id=case.id
        )
        if content
        else None
    )
    asked = (
        questions.list_questions(
            session=session, principal=principal, ctx=caller.ctx, case_id=case.id
        )
        if "case.clinical.read" in may
        else []
    )
    context: dict[str, Any] = {
        "case": cases_service.describe(session=session, principal=principal, case=case),
        "words": wording.status_in_words(case, role=principal.role),
        "may": may,
        "files": intake_service.describe_files(session=session, files=files),
        "studies": studies,
        "questions": asked,
        "open_clarifications": [
            q for q in asked if q.kind == QuestionKind.clarification and q.answer is None
        ],
        "follow_ups_left": settings.max_follow_up_questions
        - sum(1 for q in asked if q.kind == QuestionKind.follow_up),
        "consent_given": cases_service.current_consent(session=session, case_id=case.id)
        is not None,
        "consent_version": CURRENT_VERSION,
        "consent_text": CONSENT_TEXTS[CURRENT_VERSION],
        "opinion": _opinion(session, caller, case),
        "uploads_open": case.status in intake_service.UPLOAD_STATUSES and "case.files.add" in may,
    }
    if "case.dicomweb.token" in may:
        context["viewer_tokens"] = tokens.list_tokens(
            session=session, principal=principal, case_id=case.id
        )
        context["dicomweb_url"] = f"{settings.base_url.rstrip('/')}/api/cases/{case.id}/dicomweb"
        context["token_hours"] = f"{settings.dicomweb_token_hours:g}"
    if "case.assign" in may:
        context["assignments"] = assignment.list_assignments(
            session=session, principal=principal, ctx=caller.ctx, case_id=case.id
        )
        result = assignment.suggestions_for(
            session=session, principal=principal, ctx=caller.ctx, settings=settings, case_id=case.id
        )
        context["suggestions"] = suggestions_public(session=session, result=result)
        context["specialists"] = specialists.list_specialists(
            session=session, principal=principal, ctx=caller.ctx
        )
        context["audit"] = audit_service.read_trail(
            session=session, principal=principal, ctx=caller.ctx, case_id=case.id, limit=100
        )
    if "case.break_glass.read" in may:
        context["break_glass"] = break_glass_service.list_grants(
            session=session, principal=principal, case_id=case.id
        )
    return context


def _opinion(session: Session, caller: SignedInCaller, case: Case) -> Any:
    try:
        _case, opinion = opinions.readable_opinion(
            session=session,
            principal=caller.principal,
            ctx=caller.ctx,
            case_id=case.id,
            action="opinion.read",
        )
    except NotFound:
        return None
    return opinions.describe(session=session, opinion=opinion)


def _identity_flags(
    session: Session, cases: Sequence[Case], patients: dict[uuid.UUID, User]
) -> set[uuid.UUID]:
    """Cases whose images name someone else than the account (or another birth date)."""
    studies: dict[uuid.UUID, list[DicomStudy]] = defaultdict(list)
    for row in session.exec(
        select(DicomStudy).where(col(DicomStudy.case_id).in_([case.id for case in cases]))
    ):
        studies[row.case_id].append(row)
    return {
        case.id
        for case in cases
        if studies[case.id]
        and case.patient_id in patients
        and intake_service.identity_check(patients[case.patient_id], studies[case.id]).mismatch
    }


def dashboard(
    *,
    request: Request,
    caller: SignedInCaller,
    session: Session,
    settings: Settings,
    status: CaseStatus | None,
    deadline: str | None,
    specialist: uuid.UUID | None,
) -> Response:
    """The coordinator's view: counts by status, the triage queue, all cases filtered."""
    cases = cases_service.list_cases(session=session, principal=caller.principal, ctx=caller.ctx)
    summaries = [cases_service.summarize(session=session, case=case) for case in cases]
    counts = Counter(summary.status.value for summary in summaries)
    shown = [
        summary
        for summary in summaries
        if (status is None or summary.status == status)
        and (deadline is None or summary.deadline_state == deadline)
        and (
            specialist is None
            or (summary.assigned_specialist and summary.assigned_specialist.id == specialist)
        )
    ]
    patients = {
        user.id: user
        for user in session.exec(
            select(User).where(col(User.id).in_([case.patient_id for case in cases]))
        )
    }
    owner = {
        case.id: patients[case.patient_id].full_name if case.patient_id in patients else ""
        for case in cases
    }
    team = specialists.list_specialists(session=session, principal=caller.principal, ctx=caller.ctx)
    triage = [summary for summary in summaries if summary.status == CaseStatus.triage]
    by_id = {case.id: case for case in cases}
    suggested = {
        summary.id: suggestions_public(
            session=session,
            result=assignment.rank(
                session=session, case=by_id[summary.id], settings=settings, now=utcnow()
            ),
        ).suggestions[:3]
        for summary in triage
    }
    context = {
        "counts": [(value.value, counts.get(value.value, 0)) for value in CaseStatus],
        "triage": triage,
        "suggested": suggested,
        "identity_flags": _identity_flags(
            session,
            [case for case in cases if access.may(caller.principal, case, "case.identity.check")],
            patients,
        ),
        "rows": shown,
        "owner": owner,
        "team": team,
        "filters": {"status": status, "deadline": deadline, "specialist": specialist},
        "statuses": [value.value for value in CaseStatus],
    }
    return render(request, "cases/dashboard.html", context)
