"""Read-only DICOMweb tokens, each for one case: made, listed, revoked, resolved on use.

A token acts for the account that made it, on its one case, for reading images only, and
never for more than that account may do now: a specialist taken off the case, a deactivated
account, or a revoked or expired token reads nothing.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlmodel import Session, col, func, select

from portal import access
from portal.access import Principal
from portal.accounts.models import Role, User
from portal.accounts.service import hash_token
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.db import begin_read_only, utcnow
from portal.dicomweb.models import DicomwebToken, TokenPublic
from portal.errors import Conflict, Forbidden, NotAuthenticated, NotFound
from portal.i18n import _
from portal.settings import Settings

PREFIX = "dcmweb_"
"""Every DICOMweb token starts with this, so it is told from a sign-in token at a glance."""


def issue(
    *,
    session: Session,
    settings: Settings,
    principal: Principal,
    ctx: AuditContext,
    case_id: uuid.UUID,
    label: str | None,
) -> tuple[DicomwebToken, str]:
    """Make a token for ``case_id``; returns the row and the token (shown once)."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.dicomweb.token"
    )
    if not access.permits(
        session=session, principal=principal, case=case, action="case.dicomweb.read"
    ):
        raise Forbidden(_("A viewer token needs access to the case's images, which you lack now."))
    now = utcnow()
    live = session.exec(
        select(func.count())
        .select_from(DicomwebToken)
        .where(DicomwebToken.case_id == case.id, DicomwebToken.user_id == principal.user_id)
        .where(col(DicomwebToken.revoked_at).is_(None), DicomwebToken.expires_at > now)
    ).one()
    if live >= settings.dicomweb_max_tokens_per_case:
        raise Conflict(
            _("You have as many live viewer tokens for this case as allowed; revoke one.")
        )
    token = PREFIX + secrets.token_urlsafe(32)
    row = DicomwebToken(
        case_id=case.id,
        user_id=principal.user_id,
        token_hash=hash_token(token),
        label=label.strip() if label and label.strip() else None,
        created_at=now,
        expires_at=now + timedelta(hours=settings.dicomweb_token_hours),
    )
    session.add(row)
    session.flush()
    audit_service.record(
        session=session,
        ctx=ctx,
        action="dicomweb.token.issue",
        entity_type="dicomweb_token",
        entity_id=row.id,
        case_id=case.id,
        details={"expires_at": row.expires_at.isoformat()},
    )
    session.commit()
    return row, token


def list_tokens(*, session: Session, principal: Principal, case_id: uuid.UUID) -> list[TokenPublic]:
    """The caller's tokens for the case; coordinators see everyone's (to revoke them)."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.dicomweb.token"
    )
    query = select(DicomwebToken).where(DicomwebToken.case_id == case.id)
    if not access.may(principal, case, "case.dicomweb.tokens.others"):
        query = query.where(DicomwebToken.user_id == principal.user_id)
    rows: Sequence[DicomwebToken] = session.exec(
        query.order_by(col(DicomwebToken.created_at).desc())
    ).all()
    session.commit()
    return [
        TokenPublic.model_validate(row, update={"mine": row.user_id == principal.user_id})
        for row in rows
    ]


def revoke(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    case_id: uuid.UUID,
    token_id: uuid.UUID,
) -> None:
    """Revoke a token at once (the caller's own; coordinators may revoke any on the case)."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.dicomweb.token"
    )
    row = session.get(DicomwebToken, token_id)
    others = access.may(principal, case, "case.dicomweb.tokens.others")
    if row is None or row.case_id != case.id or (row.user_id != principal.user_id and not others):
        raise NotFound(_("Token not found."))
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
    audit_service.record(
        session=session,
        ctx=ctx,
        action="dicomweb.token.revoke",
        entity_type="dicomweb_token",
        entity_id=row.id,
        case_id=case.id,
    )
    session.commit()


def resolve(*, session: Session, token: str) -> tuple[DicomwebToken, User, Principal]:
    """The token's row, its account and the scoped principal it acts as.

    Raises
    ------
    NotAuthenticated
        Unknown, revoked or expired token, or a deactivated account (401, no detail why).
    """
    begin_read_only(session)
    found = session.exec(
        select(DicomwebToken, User)
        .join(User, col(User.id) == col(DicomwebToken.user_id))
        .where(DicomwebToken.token_hash == hash_token(token))
    ).first()
    session.commit()
    if found is None:
        raise NotAuthenticated(_("This viewer token is not valid."))
    row, user = found
    if row.revoked_at is not None or row.expires_at <= utcnow() or not user.is_active:
        raise NotAuthenticated(_("This viewer token has expired or was revoked."))
    principal = Principal(user_id=user.id, role=Role(user.role), scope_case_id=row.case_id)
    return row, user, principal
