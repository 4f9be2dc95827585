"""JSON API: open, list and read cases."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from portal.cases import service
from portal.cases.models import CaseCreate, CasePublic, CaseStatus, CaseSummary
from portal.deps import Caller, SessionDep

router = APIRouter(prefix="/api/cases", tags=["cases"])


@router.post("", status_code=status.HTTP_201_CREATED)
def open_case(data: CaseCreate, caller: Caller, session: SessionDep) -> CasePublic:
    case = service.open_case(
        session=session, principal=caller.principal, ctx=caller.ctx, patient=caller.user, data=data
    )
    return service.describe(session=session, case=case)


@router.get("")
def list_cases(
    caller: Caller, session: SessionDep, status: CaseStatus | None = None
) -> list[CaseSummary]:
    cases = service.list_cases(
        session=session, principal=caller.principal, ctx=caller.ctx, status=status
    )
    return [service.summarize(session=session, case=case) for case in cases]


@router.get("/{case_id}")
def read_case(case_id: uuid.UUID, caller: Caller, session: SessionDep) -> CasePublic:
    case = service.read_case(
        session=session, principal=caller.principal, ctx=caller.ctx, case_id=case_id
    )
    return service.describe(session=session, case=case)
