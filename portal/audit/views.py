"""JSON API: the audit trail for coordinators and admins."""

from __future__ import annotations

import json
import uuid

from fastapi import APIRouter, Query

from portal.audit import service
from portal.audit.models import AuditEventPublic
from portal.deps import Caller, SessionDep

router = APIRouter(prefix="/api/audit", tags=["audit"])
MAX_SEQ = 2**31 - 1
"""The largest sequence number the column holds (INTEGER); a larger one is no position."""
MAX_ID = 2**63 - 1
"""The largest append id (BIGINT)."""


@router.get("")
def list_audit_events(
    caller: Caller,
    session: SessionDep,
    case_id: uuid.UUID | None = None,
    before_seq: int | None = Query(default=None, ge=1, le=MAX_SEQ),
    before_id: int | None = Query(default=None, ge=1, le=MAX_ID),
    limit: int = Query(default=200, ge=1, le=1000),
) -> list[AuditEventPublic]:
    events = service.read_trail(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        limit=limit,
        before_seq=before_seq,
        before_id=before_id,
    )
    return [
        AuditEventPublic.model_validate(event, update={"details": json.loads(event.details)})
        for event in events
    ]
