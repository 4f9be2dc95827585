"""JSON API of the review workflow: offers, assignment, questions, opinions, specialists."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status
from sqlmodel import Field, SQLModel

from portal.cases import service as cases_service
from portal.cases.models import CasePublic
from portal.deps import BoxDep, Caller, PageDep, SessionDep, SettingsDep
from portal.i18n import _
from portal.inputs import MultiLineText
from portal.pagination import Page
from reviewers import assignment, opinions, questions, specialists
from reviewers import pdf as opinion_pdf
from reviewers.models import (
    AddendumCreate,
    AddendumPublic,
    AssignmentPublic,
    OpinionDraft,
    OpinionPublic,
    QuestionPublic,
    SignRequest,
    SpecialistProfileUpdate,
    SpecialistPublic,
    TextBody,
)
from reviewers.suggestions import SuggestionsPublic, suggestions_public

router = APIRouter(prefix="/api/cases", tags=["review"])
specialists_router = APIRouter(prefix="/api/specialists", tags=["specialists"])


class DeclineRequest(SQLModel):
    reason: MultiLineText = Field(min_length=3, max_length=2000)


class AssignRequest(SQLModel):
    specialist_id: uuid.UUID
    reason: MultiLineText | None = Field(default=None, max_length=2000)


@router.post("/{case_id}/accept")
def accept(
    case_id: uuid.UUID, caller: Caller, session: SessionDep, settings: SettingsDep
) -> CasePublic:
    case = assignment.accept(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        settings=settings,
        case_id=case_id,
    )
    return cases_service.describe(session=session, principal=caller.principal, case=case)


@router.post("/{case_id}/decline")
def decline(
    case_id: uuid.UUID,
    data: DeclineRequest,
    caller: Caller,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, str]:
    assignment.decline(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        settings=settings,
        case_id=case_id,
        reason=data.reason.strip(),
    )
    # The case has gone to someone else (or to triage): the decliner no longer sees it.
    return {"detail": _("Declined. The case has been passed on.")}


@router.post("/{case_id}/assign")
def assign(
    case_id: uuid.UUID,
    data: AssignRequest,
    caller: Caller,
    session: SessionDep,
    settings: SettingsDep,
) -> CasePublic:
    case = assignment.assign(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        settings=settings,
        case_id=case_id,
        specialist_id=data.specialist_id,
        reason=data.reason,
    )
    return cases_service.describe(session=session, principal=caller.principal, case=case)


@router.get("/{case_id}/assignments")
def assignments(case_id: uuid.UUID, caller: Caller, session: SessionDep) -> list[AssignmentPublic]:
    return assignment.list_assignments(
        session=session, principal=caller.principal, ctx=caller.ctx, case_id=case_id
    )


@router.get("/{case_id}/suggestions")
def suggestions(
    case_id: uuid.UUID, caller: Caller, session: SessionDep, settings: SettingsDep
) -> SuggestionsPublic:
    result = assignment.suggestions_for(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        settings=settings,
        case_id=case_id,
    )
    return suggestions_public(session=session, result=result)


@router.get("/{case_id}/questions")
def list_questions(case_id: uuid.UUID, caller: Caller, session: SessionDep) -> list[QuestionPublic]:
    return questions.list_questions(
        session=session, principal=caller.principal, ctx=caller.ctx, case_id=case_id
    )


@router.post("/{case_id}/questions", status_code=status.HTTP_201_CREATED)
def ask(
    case_id: uuid.UUID, data: TextBody, caller: Caller, session: SessionDep, settings: SettingsDep
) -> QuestionPublic:
    return questions.ask(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        settings=settings,
        case_id=case_id,
        text=data.text,
    )


@router.post("/{case_id}/questions/{question_id}/answer")
def answer(
    case_id: uuid.UUID,
    question_id: uuid.UUID,
    data: TextBody,
    caller: Caller,
    session: SessionDep,
    settings: SettingsDep,
) -> QuestionPublic:
    return questions.answer(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        settings=settings,
        case_id=case_id,
        question_id=question_id,
        text=data.text,
    )


@router.put("/{case_id}/opinion")
def save_opinion(
    case_id: uuid.UUID, data: OpinionDraft, caller: Caller, session: SessionDep
) -> OpinionPublic:
    opinion = opinions.save_draft(
        session=session, principal=caller.principal, ctx=caller.ctx, case_id=case_id, data=data
    )
    return opinions.describe(session=session, opinion=opinion)


@router.get("/{case_id}/opinion")
def read_opinion(case_id: uuid.UUID, caller: Caller, session: SessionDep) -> OpinionPublic:
    _case, opinion = opinions.readable_opinion(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        action="opinion.read",
    )
    return opinions.describe(session=session, opinion=opinion)


@router.post("/{case_id}/opinion/sign")
def sign_opinion(
    case_id: uuid.UUID,
    data: SignRequest,
    caller: Caller,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
) -> OpinionPublic:
    opinion = opinions.sign(
        session=session,
        settings=settings,
        box=box,
        principal=caller.principal,
        ctx=caller.ctx,
        user=caller.user,
        case_id=case_id,
        password=data.password,
        otp=data.otp,
    )
    return opinions.describe(session=session, opinion=opinion)


@router.post("/{case_id}/opinion/addenda", status_code=status.HTTP_201_CREATED)
def add_addendum(
    case_id: uuid.UUID, data: AddendumCreate, caller: Caller, session: SessionDep
) -> AddendumPublic:
    item = opinions.write_addendum(
        session=session, principal=caller.principal, ctx=caller.ctx, case_id=case_id, text=data.text
    )
    return AddendumPublic(
        at=item.at,
        author_name=item.author_name,
        text=data.text,
        content_sha256=item.content_sha256,
        answers_question=item.question_id,
    )


@router.get("/{case_id}/opinion.pdf")
def opinion_as_pdf(case_id: uuid.UUID, caller: Caller, session: SessionDep) -> Response:
    document = opinions.pdf_document(
        session=session, principal=caller.principal, ctx=caller.ctx, case_id=case_id
    )
    body = opinion_pdf.render_opinion_pdf(document)
    filename = f"second-opinion-{document.case_reference}.pdf"
    return Response(
        body,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@specialists_router.get("")
def list_specialists(caller: Caller, session: SessionDep, page: PageDep) -> Page[SpecialistPublic]:
    """Specialists with their load, by name, one page at a time."""
    items, next_cursor = specialists.list_specialists(
        session=session, principal=caller.principal, ctx=caller.ctx, page=page
    )
    return Page(items=items, next=next_cursor)


@specialists_router.get("/{specialist_id}")
def read_specialist(
    specialist_id: uuid.UUID, caller: Caller, session: SessionDep
) -> SpecialistPublic:
    return specialists.read_specialist(
        session=session, principal=caller.principal, specialist_id=specialist_id
    )


@specialists_router.patch("/{specialist_id}")
def update_specialist(
    specialist_id: uuid.UUID, data: SpecialistProfileUpdate, caller: Caller, session: SessionDep
) -> SpecialistPublic:
    return specialists.update_profile(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        specialist_id=specialist_id,
        data=data,
    )
