"""Pages: the case list (by role), opening a case, and the case page."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response
from pydantic import ValidationError
from sqlmodel import Session

from portal import access
from portal.accounts.models import Role
from portal.cases import consent, service, wording
from portal.cases.models import BodyRegion, CaseCreate, CaseStatus, ConsentRequest, Priority
from portal.deps import PageDep, SessionDep, SettingsDep
from portal.errors import InvalidInput
from portal.i18n import N_, _, gettext, language_name
from portal.inputs import SUPPORTED_LANGUAGES, MultiLineText, SingleLineText
from portal.intake import service as intake_service
from portal.pages import case_page as case_page_builder
from portal.pages import dashboard_page
from portal.settings import Settings
from portal.web.deps import FormCaller, PageCaller
from portal.web.errors import readable_validation_error
from portal.web.templating import page_link, render, see_other
from reviewers import specialists, submission
from reviewers.dashboard import CaseFilters
from reviewers.deadlines import DeadlineState

router = APIRouter(include_in_schema=False)

DONE = {
    "opened": N_("Your case is open. The card below says what to do next."),
    "consent": N_("Thank you — your consent is recorded."),
    "submitted": N_("Your case has been submitted."),
    "cancelled": N_("The case has been cancelled."),
    "closed": N_("The case is closed."),
}


def back_to(case_id: uuid.UUID, done: str | None = None) -> Response:
    """Back to the case page after a form (post/redirect/get), with a note of what happened."""
    return see_other(f"/cases/{case_id}" + (f"?done={done}" if done else ""))


@router.get("/cases")
def case_list(
    request: Request,
    caller: PageCaller,
    session: SessionDep,
    settings: SettingsDep,
    page: PageDep,
    status: CaseStatus | None = None,
    deadline: DeadlineState | None = None,
    specialist: uuid.UUID | None = None,
    q: Annotated[SingleLineText | None, Query(max_length=100)] = None,
) -> Response:
    role = caller.principal.role
    if access.is_allowed(caller.principal, "cases.dashboard"):
        filters = CaseFilters(status=status, deadline=deadline, specialist=specialist, search=q)
        return dashboard_page.dashboard(
            request=request,
            caller=caller,
            session=session,
            settings=settings,
            filters=filters,
            page=page,
        )
    cases, next_cursor = service.list_cases(
        session=session, principal=caller.principal, ctx=caller.ctx, page=page
    )
    readable = [c.id for c in cases if access.may(caller.principal, c, "case.dicomweb.read")]
    studies = intake_service.study_uids_by_case(session=session, case_ids=readable)
    rows = [
        {
            "case": summary,
            "words": wording.status_in_words(case, role=role),
            "studies": studies.get(case.id, []),
        }
        for case, summary in zip(
            cases, service.summarize_all(session=session, cases=cases), strict=True
        )
    ]
    template = "cases/worklist.html" if role == Role.specialist else "cases/list.html"
    next_page = page_link("/cases", {"limit": page.limit}, next_cursor)
    return render(request, template, {"rows": rows, "next_page": next_page})


def _new_case_context(
    session: Session, settings: Settings, form: dict[str, Any], error: str | None = None
) -> dict[str, Any]:
    consent_language, consent_text = consent.consent_text()
    languages = opinion_languages(session)
    codes = [code for code, _name in languages]
    if form.get("language") not in codes:  # the patient's own, when a specialist writes it
        form = {**form, "language": "en" if "en" in codes else codes[0]}
    return {
        "form": form,
        "error": error,
        "regions": [region.value for region in BodyRegion],
        "languages": languages,
        "standard_days": settings.standard_due_business_days,
        "urgent_hours": settings.urgent_due_hours,
        "consent_version": consent.CURRENT_VERSION,
        "consent_language": consent_language,
        "consent_text": consent_text,
    }


def opinion_languages(session: Session) -> list[tuple[str, str]]:
    """The languages an opinion may be asked in: those the specialists write (any supported
    language while there are none), each named in the page's language and in itself."""
    written = specialists.written_languages(session=session) or list(SUPPORTED_LANGUAGES)
    codes = [code for code in written if code in SUPPORTED_LANGUAGES]
    named = [(code, _language_label(code)) for code in codes]
    return sorted(named, key=lambda item: item[1].casefold())


def _language_label(code: str) -> str:
    here, native = language_name(code), SUPPORTED_LANGUAGES[code]
    return here if here.casefold() == native.casefold() else f"{here} ({native})"


@router.get("/cases/new")
def new_case_page(
    request: Request, caller: PageCaller, session: SessionDep, settings: SettingsDep
) -> Response:
    form = {"language": caller.user.language, "priority": "standard", "body_region": "spine"}
    return render(request, "cases/new.html", _new_case_context(session, settings, form))


@router.post("/cases/new")
def open_case(
    request: Request,
    caller: FormCaller,
    session: SessionDep,
    settings: SettingsDep,
    subject: Annotated[str, Form(max_length=200)],
    body_region: Annotated[str, Form(max_length=16)],
    clinical_question: Annotated[str, Form(max_length=8000)],
    history: Annotated[str, Form(max_length=20000)] = "",
    language: Annotated[str, Form(max_length=8)] = "en",
    priority: Annotated[str, Form(max_length=16)] = Priority.standard.value,
    consent_version: Annotated[SingleLineText, Form(max_length=32)] = "",
    accept_consent: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    form = {
        "subject": subject,
        "body_region": body_region,
        "clinical_question": clinical_question,
        "history": history,
        "language": language,
        "priority": priority,
    }
    try:
        data = CaseCreate.model_validate({**form, "history": history or None})
    except ValidationError as exc:
        context = _new_case_context(session, settings, form, readable_validation_error(exc))
        return render(request, "cases/new.html", context, status_code=422)
    case = service.open_case(
        session=session, principal=caller.principal, ctx=caller.ctx, patient=caller.user, data=data
    )
    if accept_consent:
        service.record_consent(
            session=session,
            principal=caller.principal,
            ctx=caller.ctx,
            case_id=case.id,
            data=ConsentRequest(accepted=True, version=consent_version),
        )
    return back_to(case.id, "opened")


@router.get("/cases/{case_id}")
def case_page(
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
    flash = DONE.get(done or "") or case_page_builder.DONE.get(done or "")
    context["flash"] = gettext(flash) if flash else None
    return render(request, "cases/case.html", context)


@router.get("/cases/{case_id}/files")
def file_list(
    request: Request, case_id: uuid.UUID, caller: PageCaller, session: SessionDep, page: PageDep
) -> Response:
    """Every file of the case by the name it was sent with, oldest first, a page at a time."""
    case = service.read_case(
        session=session, principal=caller.principal, ctx=caller.ctx, case_id=case_id
    )
    files, next_cursor = intake_service.list_files(
        session=session, principal=caller.principal, ctx=caller.ctx, case_id=case.id, page=page
    )
    context = {
        "case": case,
        "files": intake_service.describe_files(session=session, files=files),
        "next_page": page_link(f"/cases/{case.id}/files", {"limit": page.limit}, next_cursor),
    }
    return render(request, "cases/files.html", context)


@router.get("/cases/{case_id}/viewer")
def viewer(
    request: Request,
    case_id: uuid.UUID,
    caller: PageCaller,
    session: SessionDep,
    series: uuid.UUID | None = None,
) -> Response:
    """The image viewer: the case's series on the side, the chosen one to scroll through."""
    case = service.read_case(
        session=session, principal=caller.principal, ctx=caller.ctx, case_id=case_id
    )
    studies = intake_service.studies(
        session=session, principal=caller.principal, ctx=caller.ctx, case_id=case.id
    )
    ordered = [item.id for study in studies.studies for item in study.series]
    if series is None:
        selected = ordered[0] if ordered else None
    else:
        selected = series if series in ordered else None
    context = {"case": case, "studies": studies, "selected": selected}
    return render(request, "cases/viewer.html", context)


@router.post("/cases/{case_id}/consent")
def give_consent(
    case_id: uuid.UUID,
    caller: FormCaller,
    session: SessionDep,
    version: Annotated[SingleLineText, Form(max_length=32)] = "",
    accept: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    if not accept:
        raise InvalidInput(_("Tick the box to accept the consent text."))
    service.record_consent(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        data=ConsentRequest(accepted=True, version=version),
    )
    return back_to(case_id, "consent")


@router.post("/cases/{case_id}/submit")
def submit(
    case_id: uuid.UUID, caller: FormCaller, session: SessionDep, settings: SettingsDep
) -> Response:
    submission.submit_case(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        settings=settings,
        case_id=case_id,
    )
    return back_to(case_id, "submitted")


@router.post("/cases/{case_id}/cancel")
def cancel(
    case_id: uuid.UUID,
    caller: FormCaller,
    session: SessionDep,
    settings: SettingsDep,
    reason: Annotated[MultiLineText, Form(max_length=2000)] = "",
) -> Response:
    submission.cancel_case(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        settings=settings,
        case_id=case_id,
        reason=reason or None,
    )
    return back_to(case_id, "cancelled")


@router.post("/cases/{case_id}/close")
def close(
    case_id: uuid.UUID, caller: FormCaller, session: SessionDep, settings: SettingsDep
) -> Response:
    submission.close_case(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        settings=settings,
        case_id=case_id,
    )
    return back_to(case_id, "closed")
