"""Pages of treatment: the guide's editor and the plan requests for coordinators, and the
patient's "request a treatment plan" form (shown on the case page, ``cases/_treatment.html``).

Forms post flat fields (``name_en``, ``name_ru``, ``price_min``…); they are gathered into the
same input models the services take, and validated whole before anything is written.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from pydantic import BaseModel, ValidationError

from portal import i18n
from portal.cases.pages import back_to
from portal.deps import SessionDep, SettingsDep
from portal.errors import InvalidInput
from portal.i18n import N_, gettext
from portal.inputs import MultiLineText, SingleLineText
from portal.pagination import PageRequest
from portal.web.deps import FormCaller, PageCaller
from portal.web.errors import readable_validation_error
from portal.web.templating import page_link, render, see_other
from reviewers.treatment import editor, guide, requests
from reviewers.treatment.models import (
    ClinicSave,
    ConditionSave,
    OfferSave,
    OptionSave,
    RequestStatus,
    RequestStatusChange,
    TreatmentRequestCreate,
)

router = APIRouter(include_in_schema=False)
M = TypeVar("M", bound=BaseModel)

Line = Annotated[SingleLineText, Form(max_length=300)]
Text = Annotated[MultiLineText, Form(max_length=8000)]
HELP_ME_CHOOSE = "help"

DONE = {
    "saved": N_("Saved."),
    "removed": N_("The clinic no longer offers that treatment."),
    "moved": N_("The request has been updated."),
}


def _validated(model: type[M], values: dict[str, Any]) -> M:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise InvalidInput(readable_validation_error(exc)) from None


def _per_language(form: dict[str, str], fields: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """``name_en``, ``name_ru``… as ``{"en": {"name": ...}, "ru": {...}}``; a language other
    than English whose fields are all empty is left out (it falls back to English)."""
    texts = {}
    for language in i18n.interface_languages():
        values = {name: str(form.get(f"{name}_{language}", "")).strip() for name in fields}
        if language == i18n.SOURCE_LANGUAGE or any(values.values()):
            texts[language] = values
    return texts


def _price_fields(form: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {"currency": str(form.get("currency", "")).strip() or "USD"}
    for name in ("price_min", "price_max", "price_set_on"):
        value = str(form.get(name, "")).strip().replace(" ", "").replace(",", "")
        values[name] = value or None
    return values


async def _form_fields(request: Request) -> dict[str, str]:
    """Every text field of the posted form (read in the event loop; the route stays sync)."""
    return {name: value for name, value in (await request.form()).items() if isinstance(value, str)}


FormFields = Annotated[dict[str, str], Depends(_form_fields)]


def _flash(done: str | None) -> str | None:
    return gettext(DONE[done]) if done in DONE else None


# --- the guide (coordinators) -------------------------------------------------------------------


@router.get("/treatment/guide")
def guide_page(
    request: Request, caller: PageCaller, session: SessionDep, done: str | None = None
) -> Response:
    conditions, clinics = editor.read_for_editing(session=session, principal=caller.principal)
    context = {"conditions": conditions, "clinics": clinics, "flash": _flash(done)}
    return render(request, "treatment/guide.html", context)


@router.get("/treatment/guide/conditions/{slug}")
def condition_page(
    request: Request, slug: str, caller: PageCaller, session: SessionDep
) -> Response:
    condition = editor.editable_condition(session=session, principal=caller.principal, slug=slug)
    context = {"condition": condition, "languages": i18n.interface_languages()}
    return render(request, "treatment/condition_edit.html", context)


@router.post("/treatment/guide/conditions")
def save_condition(form: FormFields, caller: FormCaller, session: SessionDep) -> Response:
    data = _validated(
        ConditionSave,
        {
            "slug": form.get("slug", ""),
            "position": form.get("position") or 0,
            "texts": _per_language(form, ("name", "summary", "diagnosis")),
        },
    )
    editor.save_condition(session=session, principal=caller.principal, ctx=caller.ctx, data=data)
    return see_other("/treatment/guide?done=saved")


@router.get("/treatment/guide/options/{slug}")
def option_page(
    request: Request,
    slug: str,
    caller: PageCaller,
    session: SessionDep,
    condition: str | None = None,
) -> Response:
    option = editor.editable_option(session=session, principal=caller.principal, slug=slug)
    conditions, _clinics = editor.read_for_editing(session=session, principal=caller.principal)
    context = {
        "option": option,
        "condition": option.condition if option else condition,
        "conditions": conditions,
        "languages": i18n.interface_languages(),
    }
    return render(request, "treatment/option_edit.html", context)


@router.post("/treatment/guide/options")
def save_option(form: FormFields, caller: FormCaller, session: SessionDep) -> Response:
    data = _validated(
        OptionSave,
        {
            "slug": form.get("slug", ""),
            "condition": form.get("condition", ""),
            "position": form.get("position") or 0,
            "texts": _per_language(form, ("name", "description")),
            **_price_fields(form),
        },
    )
    editor.save_option(session=session, principal=caller.principal, ctx=caller.ctx, data=data)
    return see_other("/treatment/guide?done=saved")


@router.get("/treatment/guide/clinics/{slug}")
def clinic_page(request: Request, slug: str, caller: PageCaller, session: SessionDep) -> Response:
    clinic = editor.editable_clinic(session=session, principal=caller.principal, slug=slug)
    conditions, _clinics = editor.read_for_editing(session=session, principal=caller.principal)
    context = {
        "clinic": clinic,
        "conditions": conditions,
        "languages": i18n.interface_languages(),
        "flash": _flash(request.query_params.get("done")),
    }
    return render(request, "treatment/clinic_edit.html", context)


@router.post("/treatment/guide/clinics")
def save_clinic(form: FormFields, caller: FormCaller, session: SessionDep) -> Response:
    languages = [code.strip() for code in str(form.get("languages", "")).split(",")]
    data = _validated(
        ClinicSave,
        {
            "slug": form.get("slug", ""),
            "texts": _per_language(form, ("name", "city")),
            "country": form.get("country", ""),
            "languages": [code for code in languages if code],
            "contact": form.get("contact", ""),
            "active": form.get("active") == "on",
        },
    )
    editor.save_clinic(session=session, principal=caller.principal, ctx=caller.ctx, data=data)
    return see_other(f"/treatment/guide/clinics/{data.slug}?done=saved")


@router.post("/treatment/guide/clinics/{slug}/offers")
def save_offer(slug: str, form: FormFields, caller: FormCaller, session: SessionDep) -> Response:
    data = _validated(OfferSave, {"option": form.get("option", ""), **_price_fields(form)})
    editor.save_offer(
        session=session, principal=caller.principal, ctx=caller.ctx, clinic_slug=slug, data=data
    )
    return see_other(f"/treatment/guide/clinics/{slug}?done=saved")


@router.post("/treatment/guide/clinics/{slug}/offers/{option}/remove")
def remove_offer(slug: str, option: str, caller: FormCaller, session: SessionDep) -> Response:
    editor.remove_offer(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        clinic_slug=slug,
        option_slug=option,
    )
    return see_other(f"/treatment/guide/clinics/{slug}?done=removed")


# --- requests -----------------------------------------------------------------------------------


@router.post("/cases/{case_id}/treatment-requests")
def request_plan(
    case_id: uuid.UUID,
    caller: FormCaller,
    session: SessionDep,
    settings: SettingsDep,
    clinic: Line = "",
    travel_from: Annotated[str, Form(max_length=20)] = "",
    travel_to: Annotated[str, Form(max_length=20)] = "",
    notes: Text = "",
) -> Response:
    data = _validated(
        TreatmentRequestCreate,
        {
            "clinic": None if clinic in ("", HELP_ME_CHOOSE) else clinic,
            "travel_from": travel_from or None,
            "travel_to": travel_to or None,
            "notes": notes,
        },
    )
    requests.request_plan(
        session=session,
        settings=settings,
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        data=data,
    )
    return back_to(case_id, "treatment_requested")


@router.get("/treatment/requests")
def requests_page(
    request: Request,
    caller: PageCaller,
    session: SessionDep,
    status: Annotated[str, Query(max_length=16)] = "",
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    chosen = _validated(RequestStatusChange, {"status": status}).status if status else None
    page = PageRequest(limit=50, cursor=cursor or None)
    items, next_cursor = requests.list_all(
        session=session, principal=caller.principal, ctx=caller.ctx, status=chosen, page=page
    )
    context = {
        "items": items,
        "status": status,
        "statuses": [value.value for value in RequestStatus],
        "status_words": requests.status_words(),
        "next_page": page_link("/treatment/requests", {"status": status}, next_cursor),
    }
    return render(request, "treatment/requests.html", context)


@router.get("/treatment/requests/{request_id}")
def request_page(
    request: Request,
    request_id: uuid.UUID,
    caller: PageCaller,
    session: SessionDep,
    done: str | None = None,
) -> Response:
    item, case = requests.read_request(
        session=session, principal=caller.principal, ctx=caller.ctx, request_id=request_id
    )
    context = {
        "item": item,
        "options": guide.describe_options(session=session, slugs=item.options),
        "moves": requests.moves_for(caller.principal, case, item.status),
        "status_words": requests.status_words(),
        "move_words": requests.move_words(),
        "flash": _flash(done),
    }
    return render(request, "treatment/request.html", context)


@router.post("/treatment/requests/{request_id}/status")
def move_request(
    request_id: uuid.UUID,
    caller: FormCaller,
    session: SessionDep,
    settings: SettingsDep,
    status: Annotated[str, Form(max_length=16)],
    answer: Text = "",
    back: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    data = _validated(RequestStatusChange, {"status": status, "answer": answer or None})
    moved = requests.change_status(
        session=session,
        settings=settings,
        principal=caller.principal,
        ctx=caller.ctx,
        request_id=request_id,
        data=data,
    )
    if back == "case":
        return back_to(moved.case_id, "treatment_moved")
    return see_other(f"/treatment/requests/{request_id}?done=moved")
