"""Password reset by e-mail: a single-use link, stored only as a hash, for 30 minutes.

Whoever asks gets the same answer whether or not the address has an account, and both paths
do the same work (render and seal a mail) so their timing does not tell them apart either.
Requests are limited per address and per client; over the limit the answer is the same and
no mail leaves. A new password ends every session and every other link of the account.
See docs/accounts.md, "Password reset".
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, delete, select, update

from portal.accounts import mails, passwords, service, throttle
from portal.accounts.models import (
    PasswordResetRequest,
    PasswordResetToken,
    PendingSignIn,
    Role,
    User,
)
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.db import utcnow
from portal.errors import Gone
from portal.i18n import N_
from portal.notifications import service as notifications
from portal.notifications.models import NotificationKind
from portal.sealing import SecretBox
from portal.settings import Settings

ADDRESS_PURPOSE = "password-reset-address"
TOKEN_BYTES = 32

REQUEST_RECEIVED = N_(
    "If an account exists for this address, we have sent it an e-mail with a link to choose "
    "a new password. The link works once, for 30 minutes. If nothing arrives, check the spam "
    "folder, or ask again later."
)
"""The one answer to every request (its '30 minutes' is the default ``password_reset_minutes``)."""


class ResetLinkInvalid(Gone):
    default_message = N_(
        "This link to choose a new password has expired, was already used or is not valid. "
        "Ask for a new one."
    )


def reset_link(*, base_url: str, token: str) -> str:
    """The page that takes the token: it is in the path, which access logs never show (they
    name the route template)."""
    return f"{base_url.rstrip('/')}/password-reset/{token}"


def request_reset(
    *, session: Session, settings: Settings, box: SecretBox, ctx: AuditContext, email: str
) -> bool:
    """Queue a reset link for an active account not over the limits (then commit).

    Returns whether a mail was queued; callers must answer alike either way.
    """
    email = service.normalize_email(email)
    address = box.sign(ADDRESS_PURPOSE, email)
    client = throttle.client_hash(box, ctx.client_ip)
    over_limit = _over_limit(session, settings, address, client)
    session.add(PasswordResetRequest(email_hash=address, client_hash=client))
    user = service.get_user_by_email(session=session, email=email)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = reset_link(base_url=settings.base_url, token=token)
    minutes = settings.password_reset_minutes
    if over_limit or user is None or not user.is_active:
        # The same rendering and sealing as a real one, thrown away: no timing difference.
        stand_in = user or User(full_name="-", email=email, password_hash="", role=Role.patient)
        mail = mails.reset_link_mail(user=stand_in, link=link, minutes=minutes)
        box.seal(ADDRESS_PURPOSE, (mail.secret_body or "").encode())
        _end_links(session, uuid.UUID(int=0))  # the same statement, matching no account
        reason = "throttled" if over_limit else "unknown_or_inactive"
        audit_service.record(
            session=session,
            ctx=ctx,
            action="account.password_reset_request",
            outcome="throttled" if over_limit else "failure",
            details={"reason": reason},
        )
        session.commit()
        return False
    now = utcnow()
    _end_links(session, user.id)
    session.add(
        PasswordResetToken(
            user_id=user.id,
            token_hash=service.hash_token(token),
            created_at=now,
            expires_at=now + timedelta(minutes=settings.password_reset_minutes),
        )
    )
    mail = mails.reset_link_mail(user=user, link=link, minutes=minutes)
    notifications.queue_account_mail(
        session=session,
        kind=NotificationKind.password_reset,
        recipient=user,
        subject=mail.subject,
        body=mail.body,
        secret_body=mail.secret_body,
        box=box,
    )
    audit_service.record(
        session=session,
        ctx=ctx.as_actor(user.id, user.role),
        action="account.password_reset_request",
        entity_type="user",
        entity_id=user.id,
    )
    session.commit()
    return True


def _over_limit(session: Session, settings: Settings, address: str, client: str | None) -> bool:
    since = utcnow() - timedelta(minutes=settings.password_reset_window_minutes)
    recent = select(func.count()).where(col(PasswordResetRequest.at) > since)
    by_address = session.exec(recent.where(PasswordResetRequest.email_hash == address)).one()
    if by_address >= settings.password_reset_per_address:
        return True
    if client is None:
        return False
    by_client = session.exec(recent.where(PasswordResetRequest.client_hash == client)).one()
    return by_client >= settings.password_reset_per_client


def _end_links(session: Session, user_id: uuid.UUID) -> None:
    """Every unused link of the account stops working (a newer one, or a new password)."""
    session.exec(
        update(PasswordResetToken)
        .where(
            col(PasswordResetToken.user_id) == user_id,
            col(PasswordResetToken.used_at).is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def usable_link(*, session: Session, token: str) -> PasswordResetToken | None:
    """The unexpired, unused link of an active account behind ``token``, else None."""
    found = session.exec(
        select(PasswordResetToken)
        .join(User, col(User.id) == col(PasswordResetToken.user_id))
        .where(
            PasswordResetToken.token_hash == service.hash_token(token),
            col(PasswordResetToken.used_at).is_(None),
            col(PasswordResetToken.expires_at) > utcnow(),
            col(User.is_active).is_(True),
        )
    ).first()
    session.commit()
    return found


def reset_password(
    *,
    session: Session,
    settings: Settings,
    box: SecretBox,
    ctx: AuditContext,
    token: str,
    password: str,
) -> User:
    """Set a new password with a link's token: once, before it expires (then commit).

    The policy is checked before the link is used, so a refused password does not spend it.
    The link is consumed by one conditional UPDATE: of two requests with the same token only
    one finds it unused. Every session and every other link of the account ends; two-step
    sign-in stays as it was.
    """
    link = usable_link(session=session, token=token)
    user = session.get(User, link.user_id) if link else None
    if link is None or user is None:
        raise ResetLinkInvalid()
    passwords.check_policy(password, settings=settings, email=user.email, full_name=user.full_name)
    new_hash = passwords.hash_password(password, settings=settings)
    now = utcnow()
    consumed: Any = session.exec(
        update(PasswordResetToken)
        .where(
            col(PasswordResetToken.id) == link.id,
            col(PasswordResetToken.used_at).is_(None),
            col(PasswordResetToken.expires_at) > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if consumed.rowcount != 1:
        session.rollback()
        raise ResetLinkInvalid()
    user.password_hash = new_hash
    user.updated_at = now
    session.add(user)
    _end_links(session, user.id)
    service.revoke_all_sessions(session=session, user_id=user.id)
    session.exec(delete(PendingSignIn).where(col(PendingSignIn.user_id) == user.id))
    throttle.clear_account(
        session=session, email=user.email, client=throttle.client_hash(box, ctx.client_ip)
    )
    mail = mails.password_changed_mail(
        user=user, when=now, reset_link=f"{settings.base_url.rstrip('/')}/password-reset"
    )
    notifications.queue_account_mail(
        session=session,
        kind=NotificationKind.password_changed,
        recipient=user,
        subject=mail.subject,
        body=mail.body,
    )
    audit_service.record(
        session=session,
        ctx=ctx.as_actor(user.id, user.role),
        action="account.password_reset",
        entity_type="user",
        entity_id=user.id,
    )
    session.commit()
    return user


def purge_expired(*, session: Session, settings: Settings) -> int:
    """Delete requests older than the window and links past their life (caller commits)."""
    now = utcnow()
    since = now - timedelta(minutes=settings.password_reset_window_minutes)
    requests: Any = session.exec(
        delete(PasswordResetRequest).where(col(PasswordResetRequest.at) <= since)
    )
    links: Any = session.exec(
        delete(PasswordResetToken).where(col(PasswordResetToken.expires_at) <= since)
    )
    return int(requests.rowcount) + int(links.rowcount)
