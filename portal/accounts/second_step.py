"""The sign-in page's second step: the one-time code after a password checked moments ago.

``service.sign_in(hold_password_step=True)`` remembers a correct password of an account with
two-step sign-in as a ``PendingSignIn`` row (the token's hash, 5 minutes); the page keeps the
token in an HttpOnly cookie and asks for the code alone. The password itself is never put in
the page. Wrong codes count towards the sign-in throttle like any failure, and a pending
sign-in allows only ``MAX_CODE_FAILURES`` of them; the right code consumes it (once).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, delete, select, update

from portal.accounts import service
from portal.accounts.models import PendingSignIn, User
from portal.accounts.service import InvalidCredentials, SignedIn
from portal.audit.service import AuditContext
from portal.db import utcnow
from portal.errors import NotAuthenticated
from portal.i18n import N_
from portal.sealing import SecretBox
from portal.settings import Settings

MAX_CODE_FAILURES = 5


class PendingSignInExpired(NotAuthenticated):
    default_message = N_("The sign-in took too long or was already completed. Sign in again.")


def _pending(session: Session, token: str) -> tuple[PendingSignIn, User] | None:
    found = session.exec(
        select(PendingSignIn, User)
        .join(User, col(User.id) == col(PendingSignIn.user_id))
        .where(
            PendingSignIn.token_hash == service.hash_token(token),
            col(PendingSignIn.consumed_at).is_(None),
            col(PendingSignIn.expires_at) > utcnow(),
            col(PendingSignIn.failures) < MAX_CODE_FAILURES,
            col(User.is_active).is_(True),
        )
    ).first()
    return (found[0], found[1]) if found else None


def is_pending(*, session: Session, token: str) -> bool:
    """Whether ``token`` still names a password waiting for its code."""
    found = _pending(session, token) is not None
    session.commit()
    return found


def complete_sign_in(
    *,
    session: Session,
    settings: Settings,
    box: SecretBox,
    ctx: AuditContext,
    token: str,
    otp: str,
) -> SignedIn:
    """Finish a held sign-in with the account's one-time code (then commit)."""
    found = _pending(session, token)
    if found is None:
        session.rollback()
        raise PendingSignInExpired()
    pending, user = found
    service.check_throttle(session=session, settings=settings, box=box, ctx=ctx, email=user.email)
    if not service.consume_otp(session=session, box=box, user=user, code=otp):
        session.rollback()
        session.exec(
            update(PendingSignIn)
            .where(col(PendingSignIn.id) == pending.id)
            .values(failures=col(PendingSignIn.failures) + 1)
            .execution_options(synchronize_session=False)
        )
        service.count_failure(
            session=session, box=box, ctx=ctx, email=user.email, user=user, reason="bad_otp"
        )
        raise InvalidCredentials(N_("The one-time code is not correct or was already used."))
    consumed: Any = session.exec(
        update(PendingSignIn)
        .where(col(PendingSignIn.id) == pending.id, col(PendingSignIn.consumed_at).is_(None))
        .values(consumed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if consumed.rowcount != 1:  # completed meanwhile by another request with the same token
        session.rollback()
        raise PendingSignInExpired()
    return service.finish_sign_in(session=session, settings=settings, box=box, ctx=ctx, user=user)


def purge_expired(*, session: Session) -> int:
    """Delete pending sign-ins past their life or consumed (caller commits)."""
    result: Any = session.exec(
        delete(PendingSignIn).where(
            or_(
                col(PendingSignIn.expires_at) <= utcnow(),
                col(PendingSignIn.consumed_at).is_not(None),
            )
        )
    )
    return int(result.rowcount)
