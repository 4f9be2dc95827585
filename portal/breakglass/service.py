"""Open and list break-glass grants. Who may is decided in ``portal.access``."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlmodel import Session, col, select

from portal import access
from portal.access import Principal
from portal.accounts.models import User
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.breakglass.models import BreakGlassGrant, BreakGlassPublic
from portal.db import utcnow
from portal.notifications import service as notifications
from portal.notifications.models import NotificationKind
from portal.settings import Settings


def break_glass(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    settings: Settings,
    case_id: uuid.UUID,
    reason: str,
) -> BreakGlassGrant:
    """Grant the admin a time-limited read of the case's content; audited, the patient told."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.break_glass"
    )
    now = utcnow()
    grant = BreakGlassGrant(
        case_id=case.id,
        user_id=principal.user_id,
        reason=reason,
        granted_at=now,
        expires_at=now + timedelta(minutes=settings.break_glass_minutes),
    )
    session.add(grant)
    audit_service.record(
        session=session,
        ctx=ctx,
        action="case.break_glass",
        entity_type="break_glass",
        entity_id=grant.id,
        case_id=case.id,
        details={"reason": reason, "minutes": settings.break_glass_minutes},
    )
    patient = session.get(User, case.patient_id)
    if patient is not None and patient.is_active:
        notifications.notify(
            session=session,
            kind=NotificationKind.break_glass,
            recipient=patient,
            case=case,
            base_url=settings.base_url,
        )
    session.commit()
    return grant


def list_grants(
    *, session: Session, principal: Principal, case_id: uuid.UUID
) -> list[BreakGlassPublic]:
    """Every grant on the case, newest first: for its patient, coordinators and admins."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.break_glass.read"
    )
    rows = session.exec(
        select(BreakGlassGrant)
        .where(BreakGlassGrant.case_id == case.id)
        .order_by(col(BreakGlassGrant.granted_at).desc(), col(BreakGlassGrant.id))
    ).all()
    session.commit()
    now = utcnow()
    return [
        BreakGlassPublic(
            id=row.id,
            case_id=row.case_id,
            admin_id=row.user_id,
            reason=row.reason,
            granted_at=row.granted_at,
            expires_at=row.expires_at,
            active=row.expires_at > now,
        )
        for row in rows
    ]
