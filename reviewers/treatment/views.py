"""JSON API of the treatment guide and of treatment-plan requests."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from portal.deps import Caller, PageDep, SessionDep, SettingsDep
from portal.pagination import Page
from reviewers.treatment import guide, requests
from reviewers.treatment.models import (
    ConditionPublic,
    RequestStatus,
    RequestStatusChange,
    TreatmentRequestCreate,
    TreatmentRequestPublic,
)

router = APIRouter(tags=["treatment"])


@router.get("/api/treatment/guide")
def read_guide(caller: Caller, session: SessionDep, page: PageDep) -> Page[ConditionPublic]:
    """The guide's conditions with their options, indicative prices and the clinics offering
    them, in the caller's interface language (English where a text has no translation)."""
    items, next_cursor = guide.read_conditions(session=session, page=page)
    return Page(items=items, next=next_cursor)


@router.post("/api/cases/{case_id}/treatment-requests", status_code=status.HTTP_201_CREATED)
def request_plan(
    case_id: uuid.UUID,
    data: TreatmentRequestCreate,
    caller: Caller,
    session: SessionDep,
    settings: SettingsDep,
) -> TreatmentRequestPublic:
    row = requests.request_plan(
        session=session,
        settings=settings,
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        data=data,
    )
    return requests.public(session=session, request=row)


@router.get("/api/cases/{case_id}/treatment-requests")
def case_requests(
    case_id: uuid.UUID, caller: Caller, session: SessionDep, page: PageDep
) -> Page[TreatmentRequestPublic]:
    items, next_cursor = requests.list_for_case(
        session=session, principal=caller.principal, ctx=caller.ctx, case_id=case_id, page=page
    )
    return Page(items=items, next=next_cursor)


@router.get("/api/treatment-requests")
def all_requests(
    caller: Caller,
    session: SessionDep,
    page: PageDep,
    status: RequestStatus | None = None,
) -> Page[TreatmentRequestPublic]:
    """Every case's treatment-plan requests, newest first (coordinators)."""
    items, next_cursor = requests.list_all(
        session=session, principal=caller.principal, ctx=caller.ctx, status=status, page=page
    )
    return Page(items=items, next=next_cursor)


@router.get("/api/treatment-requests/{request_id}")
def read_request(
    request_id: uuid.UUID, caller: Caller, session: SessionDep
) -> TreatmentRequestPublic:
    public, _case = requests.read_request(
        session=session, principal=caller.principal, ctx=caller.ctx, request_id=request_id
    )
    return public


@router.post("/api/treatment-requests/{request_id}/status")
def change_status(
    request_id: uuid.UUID,
    data: RequestStatusChange,
    caller: Caller,
    session: SessionDep,
    settings: SettingsDep,
) -> TreatmentRequestPublic:
    """Take up, answer, close or cancel a request."""
    row = requests.change_status(
        session=session,
        settings=settings,
        principal=caller.principal,
        ctx=caller.ctx,
        request_id=request_id,
        data=data,
    )
    return requests.public(session=session, request=row)
