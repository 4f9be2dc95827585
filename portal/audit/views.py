"""JSON API: the audit trail for coordinators and admins."""

from __future__ import annotations

import json
import uuid

from fastapi import APIRouter

from portal.audit import service
from portal.audit.models import AuditEventPublic
from portal.deps import Caller, PageDep, SessionDep
from portal.pagination import Page

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("")
def list_audit_events(
    caller: Caller, session: SessionDep, page: PageDep, case_id: uuid.UUID | None = None
) -> Page[AuditEventPublic]:
    """The trail, newest first, one page at a time (optionally one case's)."""
    events, next_cursor = service.read_trail(
        session=session, principal=caller.principal, ctx=caller.ctx, case_id=case_id, page=page
    )
    items = [
        AuditEventPublic.model_validate(event, update={"details": json.loads(event.details)})
        for event in events
    ]
    return Page(items=items, next=next_cursor)
