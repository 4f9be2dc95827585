"""What the case page shows its caller, gathered from the services of every domain.

No rules live here: every value comes from a service that already decided who may see it.
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

from sqlmodel import Session

from portal import access
from portal.accounts.models import Role
from portal.audit import service as audit_service
from portal.breakglass import service as break_glass_service
from portal.cases import progress, wording
from portal.cases import service as cases_service
from portal.cases.consent import CURRENT_VERSION, consent_text
from portal.cases.models import Case
from portal.db import utcnow
from portal.deps import SignedInCaller
from portal.dicomweb import tokens
from portal.errors import NotFound
from portal.i18n import N_
from portal.intake import service as intake_service
from portal.objects import texts
from portal.pagination import PageRequest
from portal.settings import Settings
from reviewers import assignment, opinions, questions, specialists, workflow
from reviewers.models import QuestionKind
from reviewers.sharing import service as sharing_service
from reviewers.suggestions import suggestions_public
from reviewers.treatment import panel as treatment_panel

DONE = {
    "accepted": N_("You have accepted the case."),
    "declined": N_("You declined the case; it has been passed on."),
    "asked": N_("Your question has been sent."),
    "answered": N_("Your answer has been sent."),
    "assigned": N_("The case has been assigned."),
    "saved": N_("The draft is saved."),
    "signed": N_("The opinion is signed and delivered to the patient."),
    "addendum": N_("The addendum has been added."),
    "treatment_requested": N_(
        "Your request for a treatment plan has been sent. A coordinator will answer you here "
        "and by e-mail."
    ),
    "treatment_moved": N_("The treatment-plan request has been updated."),
}


def case_context(
    *, session: Session, settings: Settings, caller: SignedInCaller, case_id: uuid.UUID
) -> dict[str, Any]:
    """Everything the case page shows this caller."""
    principal = caller.principal
    case = cases_service.read_case(
        session=session, principal=principal, ctx=caller.ctx, case_id=case_id
    )
    texts.prefetch(session=session, case_id=case.id)  # the bucket read overlaps the queries
    break_glass = access.holds_break_glass(session=session, principal=principal, case_id=case.id)
    may = access.granted(principal, case, break_glass=break_glass)
    content = "case.content.read" in may
    files = (
        intake_service.file_overview(
            session=session, principal=principal, ctx=caller.ctx, case_id=case.id
        )
        if content
        else None
    )
    studies = files.studies if files else None
    asked = (
        questions.list_questions(
            session=session, principal=principal, ctx=caller.ctx, case_id=case.id
        )
        if "case.clinical.read" in may
        else []
    )
    consent_given = cases_service.current_consent(session=session, case_id=case.id) is not None
    has_files = bool(files and (files.dicom_files or files.records))
    open_clarifications = [
        q for q in asked if q.kind == QuestionKind.clarification and q.answer is None
    ]
    opinion = _opinion(session, caller, case)
    patient = principal.role == Role.patient
    consent_language, consent_words = consent_text()
    context: dict[str, Any] = {
        "case": cases_service.describe(session=session, principal=principal, case=case),
        "words": wording.status_in_words(case, role=principal.role),
        "step_words": partial(wording.step_in_words, role=principal.role),
        "may": may,
        "files": files,
        "has_files": has_files,
        "studies": studies,
        "questions": asked,
        "open_clarifications": open_clarifications,
        "follow_ups_left": settings.max_follow_up_questions
        - sum(1 for q in asked if q.kind == QuestionKind.follow_up),
        "consent_given": consent_given,
        "consent_version": CURRENT_VERSION,
        "consent_language": consent_language,
        "consent_text": consent_words,
        "opinion": opinion,
        "opinion_first": opinion is not None and case.status in progress.ANSWERED,
        "steps": progress.steps(case.status, consent_given=consent_given, has_files=has_files)
        if patient
        else None,
        "next_step": progress.next_step(
            case.status,
            consent_given=consent_given,
            has_files=has_files,
            questions_waiting=len(open_clarifications),
        )
        if patient
        else None,
        "uploads_open": case.status in intake_service.UPLOAD_STATUSES and "case.files.add" in may,
    }
    if opinion is not None and opinion.status == "signed":
        context["treatment"] = treatment_panel.case_panel(
            session=session, principal=principal, ctx=caller.ctx, case=case, may=may
        )
    if "case.share" in may and opinion is not None and opinion.status == "signed":
        context["share_links"] = sharing_service.working_links(
            session=session, principal=principal, case_id=case.id
        )
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
        context["assignable"] = workflow.assignable(case.status)
        context["suggestions"], context["specialists"] = None, []
        if context["assignable"]:  # suggestions and the picker only where a choice is open
            team = specialists.team(session=session, principal=principal, now=utcnow())
            known = (
                assignment.KnownOfCase(
                    modalities=[
                        code for study in files.studies.studies for code in study.modalities
                    ],
                    offered=[offer.specialist_id for offer in context["assignments"]],
                )
                if files is not None
                else None
            )
            result = assignment.suggestions_for(
                session=session,
                principal=principal,
                ctx=caller.ctx,
                settings=settings,
                case_id=case.id,
                pool=team.candidates,
                known=known,
            )
            context["suggestions"] = suggestions_public(
                session=session, result=result, names=team.names()
            )
            context["specialists"] = team.roster
        context["audit"], _more = audit_service.read_trail(
            session=session,
            principal=principal,
            ctx=caller.ctx,
            case_id=case.id,
            page=PageRequest(limit=100),
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
