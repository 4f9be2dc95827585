"""JSON API: open, list and read cases."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from portal.cases import consent, service
from portal.cases.models import (
    CancelRequest,
    CaseCreate,
    CasePublic,
    CaseStatus,
    CaseSummary,
    ConsentPublic,
    ConsentRequest,
    ConsentText,
)
from portal.deps import Caller, PageDep, SessionDep, SettingsDep
from portal.pagination import Page
from reviewers import submission

router = APIRouter(prefix="/api/cases", tags=["cases"])


@router.post("", status_code=status.HTTP_201_CREATED)
def open_case(data: CaseCreate, caller: Caller, session: SessionDep) -> CasePublic:
    case = service.open_case(
        session=session, principal=caller.principal, ctx=caller.ctx, patient=caller.user, data=data
    )
    return service.describe(session=session, principal=caller.principal, case=case)


@router.get("")
def list_cases(
    caller: Caller, session: SessionDep, page: PageDep, status: CaseStatus | None = None
) -> Page[CaseSummary]:
    """The cases the caller may see, newest first, one page at a time."""
    cases, next_cursor = service.list_cases(
        session=session, principal=caller.principal, ctx=caller.ctx, status=status, page=page
    )
    return Page(items=service.summarize_all(session=session, cases=cases), next=next_cursor)


@router.get("/{case_id}")
def read_case(case_id: uuid.UUID, caller: Caller, session: SessionDep) -> CasePublic:
    case = service.read_case(
        session=session, principal=caller.principal, ctx=caller.ctx, case_id=case_id
    )
    return service.describe(session=session, principal=caller.principal, case=case)


@router.post("/{case_id}/consent", status_code=status.HTTP_201_CREATED)
def give_consent(
    case_id: uuid.UUID, data: ConsentRequest, caller: Caller, session: SessionDep
) -> ConsentPublic:
    record = service.record_consent(
        session=session, principal=caller.principal, ctx=caller.ctx, case_id=case_id, data=data
    )
    return ConsentPublic(version=record.version, accepted_at=record.accepted_at)


@router.post("/{case_id}/submit")
def submit(
    case_id: uuid.UUID, caller: Caller, session: SessionDep, settings: SettingsDep
) -> CasePublic:
    case = submission.submit_case(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        settings=settings,
        case_id=case_id,
    )
    return service.describe(session=session, principal=caller.principal, case=case)


@router.post("/{case_id}/cancel")
def cancel(
    case_id: uuid.UUID,
    caller: Caller,
    session: SessionDep,
    settings: SettingsDep,
    data: CancelRequest | None = None,
) -> CasePublic:
    case = submission.cancel_case(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        settings=settings,
        case_id=case_id,
        reason=data.reason if data else None,
    )
    return service.describe(session=session, principal=caller.principal, case=case)


@router.post("/{case_id}/close")
def close(
    case_id: uuid.UUID, caller: Caller, session: SessionDep, settings: SettingsDep
) -> CasePublic:
    case = submission.close_case(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        settings=settings,
        case_id=case_id,
    )
    return service.describe(session=session, principal=caller.principal, case=case)


consent_router = APIRouter(prefix="/api/consent", tags=["cases"])


@consent_router.get("")
def consent_text(caller: Caller) -> ConsentText:
    """The consent text a patient accepts before submitting, with its version."""
    language, text = consent.consent_text()
    return ConsentText(version=consent.CURRENT_VERSION, text=text, language=language)
