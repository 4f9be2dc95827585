"""Pages and forms of the review: accept or decline, questions, assignment, the opinion editor."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from pydantic import ValidationError

from portal.cases.pages import back_to
from portal.deps import BoxDep, SessionDep, SettingsDep
from portal.errors import InvalidInput
from portal.i18n import _, gettext
from portal.inputs import MultiLineText
from portal.pages import case_page as case_page_builder
from portal.web.deps import FormCaller, PageCaller
from portal.web.errors import readable_validation_error
from portal.web.templating import render, see_other
from reviewers import assignment, opinions, questions
from reviewers.models import OpinionContent, OpinionDraft, Urgency
from reviewers.treatment import guide

router = APIRouter(include_in_schema=False)

Text = Annotated[MultiLineText, Form(max_length=20000)]


@router.post("/cases/{case_id}/accept")
def accept(
    case_id: uuid.UUID, caller: FormCaller, session: SessionDep, settings: SettingsDep
) -> Response:
    assignment.accept(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        settings=settings,
        case_id=case_id,
    )
    return back_to(case_id, "accepted")


@router.post("/cases/{case_id}/decline")
def decline(
    case_id: uuid.UUID,
    caller: FormCaller,
    session: SessionDep,
    settings: SettingsDep,
    reason: Annotated[MultiLineText, Form(max_length=2000)] = "",
) -> Response:
    if len(reason.strip()) < 3:
        raise InvalidInput(_("Say briefly why you decline, so a coordinator can plan."))
    assignment.decline(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        settings=settings,
        case_id=case_id,
        reason=reason.strip(),
    )
    return see_other("/cases?done=declined")


@router.post("/cases/{case_id}/assign")
def assign(
    case_id: uuid.UUID,
    caller: FormCaller,
    session: SessionDep,
    settings: SettingsDep,
    specialist_id: Annotated[uuid.UUID, Form()],
    reason: Annotated[MultiLineText, Form(max_length=2000)] = "",
) -> Response:
    assignment.assign(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        settings=settings,
        case_id=case_id,
        specialist_id=specialist_id,
        reason=reason.strip() or None,
    )
    return back_to(case_id, "assigned")


@router.post("/cases/{case_id}/questions")
def ask(
    case_id: uuid.UUID, caller: FormCaller, session: SessionDep, settings: SettingsDep, text: Text
) -> Response:
    if not text.strip():
        raise InvalidInput(_("Write the question first."))
    questions.ask(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        settings=settings,
        case_id=case_id,
        text=text.strip(),
    )
    return back_to(case_id, "asked")


@router.post("/cases/{case_id}/questions/{question_id}/answer")
def answer(
    case_id: uuid.UUID,
    question_id: uuid.UUID,
    caller: FormCaller,
    session: SessionDep,
    settings: SettingsDep,
    text: Text,
) -> Response:
    if not text.strip():
        raise InvalidInput(_("Write the answer first."))
    questions.answer(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        settings=settings,
        case_id=case_id,
        question_id=question_id,
        text=text.strip(),
    )
    return back_to(case_id, "answered")


@router.get("/cases/{case_id}/opinion/edit")
def opinion_editor(
    request: Request,
    case_id: uuid.UUID,
    caller: PageCaller,
    session: SessionDep,
    settings: SettingsDep,
    done: str | None = None,
) -> Response:
    context = case_page_builder.case_context(
        session=session, settings=settings, caller=caller, case_id=case_id
    )
    opinion = context["opinion"]
    content = opinion.content if opinion else OpinionContent()
    context.update(
        {
            "content": content,
            "revision": opinion.revision if opinion else "",
            "urgencies": [value.value for value in Urgency],
            "treatment_guide": guide.read_conditions(session=session, with_offers=False)[0],
            "flash": gettext(case_page_builder.DONE[done])
            if done in case_page_builder.DONE
            else None,
            "error": None,
        }
    )
    return render(request, "cases/opinion_edit.html", context)


@router.post("/cases/{case_id}/opinion")
def save_opinion(
    case_id: uuid.UUID,
    caller: FormCaller,
    session: SessionDep,
    summary: Text = "",
    findings: Annotated[MultiLineText, Form(max_length=50000)] = "",
    impression: Text = "",
    answers: Text = "",
    treatment_options: Text = "",
    urgency: Annotated[str, Form(max_length=16)] = "",
    further_tests: Text = "",
    guide_options: Annotated[list[str], Form(max_length=30)] = [],  # noqa: B006 - FastAPI copies
    limitations: Text = "",
    revision: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    try:
        draft = OpinionDraft.model_validate(
            {
                "summary": summary,
                "findings": findings,
                "impression": impression,
                "answers": answers,
                "recommendations": {
                    "treatment_options": treatment_options,
                    "urgency": urgency or None,
                    "further_tests": further_tests,
                    "guide_options": guide_options,
                },
                "limitations": limitations,
                "revision": int(revision) if revision.isdigit() else None,
            }
        )
    except ValidationError as exc:
        raise InvalidInput(readable_validation_error(exc)) from None
    opinions.save_draft(
        session=session, principal=caller.principal, ctx=caller.ctx, case_id=case_id, data=draft
    )
    return see_other(f"/cases/{case_id}/opinion/edit?done=saved")


@router.post("/cases/{case_id}/opinion/sign")
def sign_opinion(
    case_id: uuid.UUID,
    caller: FormCaller,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
    password: Annotated[str, Form(max_length=1024)],
    otp: Annotated[str, Form(max_length=12)],
) -> Response:
    opinions.sign(
        session=session,
        settings=settings,
        box=box,
        principal=caller.principal,
        ctx=caller.ctx,
        user=caller.user,
        case_id=case_id,
        password=password,
        otp=otp.strip(),
    )
    return back_to(case_id, "signed")


@router.post("/cases/{case_id}/opinion/addenda")
def add_addendum(
    case_id: uuid.UUID, caller: FormCaller, session: SessionDep, text: Text
) -> Response:
    if not text.strip():
        raise InvalidInput(_("Write the addendum first."))
    opinions.write_addendum(
        session=session, principal=caller.principal, ctx=caller.ctx, case_id=case_id, text=text
    )
    return back_to(case_id, "addendum")
