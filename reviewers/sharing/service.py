"""The patient's side of share links: make one for a delivered opinion, list them, revoke one.

The recipient's side (opening a link, its access code) is in ``reviewers.sharing.recipient``.
See docs/sharing.md for the decisions.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from sqlmodel import Session, col, func, select

from portal import access, pagination
from portal.access import Principal
from portal.accounts.service import hash_token
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.cases.models import Case
from portal.db import utcnow
from portal.errors import Conflict, NotFound
from portal.i18n import N_
from portal.pagination import PageRequest
from portal.sealing import SecretBox
from portal.settings import Settings
from reviewers.models import Opinion, OpinionStatus
from reviewers.sharing.models import ShareLink, ShareLinkCreate, ShareLinkPublic

MAX_LIVE_LINKS = 20
"""Live (neither revoked nor expired) links a case may have at once."""
CODE_DIGITS = 8
CODE_PURPOSE = "share-link-code"
NEWEST_FIRST = (col(ShareLink.created_at), col(ShareLink.id))


class NotDeliveredYet(Conflict):
    default_message = N_("The opinion can be shared once it has been delivered to you.")


class TooManyLinks(Conflict):
    default_message = N_(
        "This case has as many working share links as allowed. Revoke one you no longer need."
    )


class ShareLinkNotFound(NotFound):
    default_message = N_("Share link not found.")


def share_url(settings: Settings, token: str) -> str:
    """The address the recipient opens (the secret is its last part)."""
    return f"{settings.base_url.rstrip('/')}/shared/{token}"


def code_hash(box: SecretBox, link_id: uuid.UUID, code: str) -> str:
    """The stored form of an access code: an HMAC under the portal's secret, bound to the link
    (a short code hashed without a secret would be found by trying every one)."""
    return box.sign(CODE_PURPOSE, f"{link_id}:{code}")


def readable_code(code: str) -> str:
    """``12345678`` as ``1234 5678``: easier to read out or type from a message."""
    return f"{code[:4]} {code[4:]}"


def create_link(
    *,
    session: Session,
    box: SecretBox,
    principal: Principal,
    ctx: AuditContext,
    case_id: uuid.UUID,
    data: ShareLinkCreate,
) -> tuple[ShareLink, str, str | None]:
    """Make a link for the case's delivered opinion.

    Returns
    -------
    tuple
        The row, the secret for the URL, and the access code (``None`` when not asked for);
        the secret and the code are never stored and never shown again.

    Raises
    ------
    NotFound
        Not the caller's case (or none).
    Forbidden
        The caller sees the case but is not its patient.
    Conflict
        The opinion is not delivered yet, or the case has too many live links.
    """
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.share"
    )
    _require_delivered(session, case)
    now = utcnow()
    live = session.exec(
        select(func.count())
        .select_from(ShareLink)
        .where(ShareLink.case_id == case.id, col(ShareLink.revoked_at).is_(None))
        .where(ShareLink.expires_at > now)
    ).one()
    if live >= MAX_LIVE_LINKS:
        raise TooManyLinks()
    token = secrets.token_urlsafe(32)
    link = ShareLink(
        case_id=case.id,
        created_by=principal.user_id,
        token_hash=hash_token(token),
        images=data.images,
        note=data.note.strip() if data.note and data.note.strip() else None,
        created_at=now,
        expires_at=now + timedelta(days=data.days),
    )
    code = None
    if data.access_code:
        code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
        link.code_hash = code_hash(box, link.id, code)
    session.add(link)
    session.flush()
    audit_service.record(
        session=session,
        ctx=ctx,
        action="share.create",
        entity_type="share_link",
        entity_id=link.id,
        case_id=case.id,
        details={"days": data.days, "images": data.images, "access_code": code is not None},
    )
    session.commit()
    return link, token, code


def list_links(
    *, session: Session, principal: Principal, case_id: uuid.UUID, page: PageRequest
) -> tuple[list[ShareLinkPublic], str | None]:
    """The case's links, newest first, working or not (without secrets)."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.share"
    )
    query = select(ShareLink).where(ShareLink.case_id == case.id)
    rows = session.exec(pagination.after(query, NEWEST_FIRST, page, descending=True)).all()
    session.commit()
    items, next_cursor = pagination.cut(rows, page, lambda row: (row.created_at, row.id))
    return [describe(link) for link in items], next_cursor


def working_links(
    *, session: Session, principal: Principal, case_id: uuid.UUID
) -> list[ShareLinkPublic]:
    """The case's links that work now (for the case page), newest first."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.share"
    )
    rows = session.exec(
        select(ShareLink)
        .where(ShareLink.case_id == case.id, col(ShareLink.revoked_at).is_(None))
        .where(ShareLink.expires_at > utcnow())
        .order_by(col(ShareLink.created_at).desc(), col(ShareLink.id).desc())
        .limit(MAX_LIVE_LINKS)
    ).all()
    return [describe(link) for link in rows]


def revoke_link(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    case_id: uuid.UUID,
    link_id: uuid.UUID,
) -> None:
    """Revoke a link at once: from now on it answers exactly like one that never existed."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.share"
    )
    link = session.get(ShareLink, link_id)
    if link is None or link.case_id != case.id:
        raise ShareLinkNotFound()
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        session.add(link)
    audit_service.record(
        session=session,
        ctx=ctx,
        action="share.revoke",
        entity_type="share_link",
        entity_id=link.id,
        case_id=case.id,
    )
    session.commit()


def describe(link: ShareLink) -> ShareLinkPublic:
    return ShareLinkPublic(
        id=link.id,
        note=link.note,
        images=link.images,
        access_code=link.code_hash is not None,
        created_at=link.created_at,
        expires_at=link.expires_at,
        revoked_at=link.revoked_at,
        last_used_at=link.last_used_at,
        uses=link.uses,
        active=link.revoked_at is None and link.expires_at > utcnow(),
    )


def _require_delivered(session: Session, case: Case) -> None:
    signed = session.exec(
        select(Opinion.id)
        .where(Opinion.case_id == case.id)
        .where(Opinion.status == OpinionStatus.signed)
    ).first()
    if signed is None:
        raise NotDeliveredYet()
