"""JSON API: ``/api/cases/{case_id}/break-glass``."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from portal.breakglass import service
from portal.breakglass.models import BreakGlassPublic, BreakGlassRequest
from portal.deps import Caller, SessionDep, SettingsDep

router = APIRouter(prefix="/api/cases/{case_id}/break-glass", tags=["break-glass"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="An admin opens the case's content for a stated reason, for a limited time",
)
def break_glass(
    case_id: uuid.UUID,
    data: BreakGlassRequest,
    caller: Caller,
    session: SessionDep,
    settings: SettingsDep,
) -> BreakGlassPublic:
    grant = service.break_glass(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        settings=settings,
        case_id=case_id,
        reason=data.reason,
    )
    return BreakGlassPublic(
        id=grant.id,
        case_id=grant.case_id,
        admin_id=grant.user_id,
        reason=grant.reason,
        granted_at=grant.granted_at,
        expires_at=grant.expires_at,
        active=True,
    )


@router.get("", summary="The case's break-glass grants, newest first")
def list_grants(case_id: uuid.UUID, caller: Caller, session: SessionDep) -> list[BreakGlassPublic]:
    return service.list_grants(session=session, principal=caller.principal, case_id=case_id)
