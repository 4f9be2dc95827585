"""Accounts: registration, sign-in with throttling and TOTP, server-side sessions."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from portal.accounts import passwords, throttle, totp
from portal.accounts.models import (
    STAFF_ROLES,
    AuthSession,
    PendingSignIn,
    Role,
    User,
    UserCreate,
)
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.db import begin_read_only, utcnow
from portal.errors import Conflict, NotAuthenticated, TooManyRequests
from portal.i18n import N_
from portal.notifications import service as notifications
from portal.notifications.models import NotificationKind
from portal.sealing import SecretBox
from portal.settings import Settings

TOKEN_PREFIX = "sop_"  # noqa: S105 - marks our tokens for secret scanners
_LAST_SEEN_GRANULARITY = timedelta(seconds=60)


class InvalidCredentials(NotAuthenticated):
    default_message = N_("The e-mail address or password is not correct.")


class OtpRequired(NotAuthenticated):
    default_message = N_("Enter the 6-digit code from your authenticator app.")

    def __init__(self, message: str | None = None, *, pending_token: str | None = None) -> None:
        super().__init__(message)
        self.pending_token = pending_token


class SessionExpired(NotAuthenticated):
    default_message = N_("Your session has ended. Sign in again.")


def normalize_email(email: str) -> str:
    return email.strip().lower()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def get_user_by_email(*, session: Session, email: str) -> User | None:
    return session.exec(select(User).where(User.email == normalize_email(email))).first()


def create_user(*, session: Session, settings: Settings, data: UserCreate, role: Role) -> User:
    """Create an account after the password policy; the caller commits."""
    email = normalize_email(str(data.email))
    passwords.check_policy(data.password, settings=settings, email=email, full_name=data.full_name)
    if get_user_by_email(session=session, email=email) is not None:
        raise Conflict(N_("An account with this e-mail address already exists."))
    return _add_user(session=session, settings=settings, data=data, email=email, role=role)


def _add_user(
    *, session: Session, settings: Settings, data: UserCreate, email: str, role: Role
) -> User:
    user = User(
        email=email,
        full_name=data.full_name,
        language=data.language,
        date_of_birth=data.date_of_birth,
        role=role,
        password_hash=passwords.hash_password(data.password, settings=settings),
    )
    session.add(user)
    session.flush()
    return user


def register_patient(
    *, session: Session, settings: Settings, ctx: AuditContext, data: UserCreate
) -> User | None:
    """Self-registration: always a patient; the new account, or None if the address had one.

    The caller answers both outcomes alike: whether an address has an account is not told
    to whoever types it in. The owner of an existing account is sent an e-mail instead, and
    the same argon2 work is spent, so the two take about as long (docs/accounts.md).
    """
    email = normalize_email(str(data.email))
    passwords.check_policy(data.password, settings=settings, email=email, full_name=data.full_name)
    existing = get_user_by_email(session=session, email=email)
    if existing is None:
        try:
            user = _add_user(
                session=session, settings=settings, data=data, email=email, role=Role.patient
            )
        except IntegrityError:  # registered at the same moment by another request
            session.rollback()
            existing = get_user_by_email(session=session, email=email)
        else:
            audit_service.record(
                session=session,
                ctx=ctx.as_actor(user.id, user.role),
                action="account.register",
                entity_type="user",
                entity_id=user.id,
            )
            session.commit()
            return user
    if existing is None:
        raise Conflict(N_("The account could not be created. Try again."))
    passwords.burn_hash_time(data.password, settings=settings)
    notifications.notify_account(
        session=session,
        kind=NotificationKind.registration_attempt,
        recipient=existing,
        base_url=settings.base_url,
    )
    audit_service.record(
        session=session,
        ctx=ctx,
        action="account.register",
        outcome="failure",
        entity_type="user",
        entity_id=existing.id,
        details={"reason": "address_in_use"},
    )
    session.commit()
    return None


def create_account_as_admin(
    *, session: Session, settings: Settings, ctx: AuditContext, data: UserCreate, role: Role
) -> User:
    user = create_user(session=session, settings=settings, data=data, role=role)
    audit_service.record(
        session=session,
        ctx=ctx,
        action="account.create",
        entity_type="user",
        entity_id=user.id,
        details={"role": role.value},
    )
    session.commit()
    return user


def list_users(*, session: Session, ctx: AuditContext, role: Role | None = None) -> Sequence[User]:
    """Accounts, oldest first; the listing is audited (it shows names and e-mail addresses)."""
    query = select(User).order_by(col(User.created_at))
    if role is not None:
        query = query.where(User.role == role)
    users = session.exec(query).all()
    audit_service.record_read(
        session=session, ctx=ctx, action="account.list", details={"count": len(users), "role": role}
    )
    session.commit()
    return users


@dataclass(frozen=True)
class SignedIn:
    user: User
    auth_session: AuthSession
    token: str


def count_failure(
    *,
    session: Session,
    box: SecretBox,
    ctx: AuditContext,
    email: str,
    user: User | None,
    reason: str,
) -> None:
    """Count a failed attempt in the sign-in throttle and audit it (then commit)."""
    throttle.record_failure(
        session=session, email=email, client=throttle.client_hash(box, ctx.client_ip)
    )
    audit_service.record(
        session=session,
        ctx=ctx.as_actor(user.id, user.role) if user else ctx,
        action="auth.login",
        outcome="failure",
        entity_type="user",
        entity_id=user.id if user else None,
        details={"reason": reason},
    )
    session.commit()


def check_throttle(
    *, session: Session, settings: Settings, box: SecretBox, ctx: AuditContext, email: str
) -> None:
    """Refuse (429) an attempt this client must still wait for; audited."""
    client = throttle.client_hash(box, ctx.client_ip)
    try:
        throttle.check(session=session, settings=settings, email=email, client=client)
    except TooManyRequests as exc:
        session.rollback()
        audit_service.record(
            session=session,
            ctx=ctx,
            action="auth.login",
            outcome="throttled",
            details={"retry_after": exc.retry_after},
        )
        session.commit()
        raise


def sign_in(
    *,
    session: Session,
    settings: Settings,
    box: SecretBox,
    ctx: AuditContext,
    email: str,
    password: str,
    otp: str | None,
    hold_password_step: bool = False,
) -> SignedIn:
    """Check password (and TOTP where enrolled), throttle, and open a server-side session.

    With ``hold_password_step`` (the sign-in page), a correct password without the code it
    needs is remembered server-side for a few minutes: ``OtpRequired.pending_token`` names it,
    and ``second_step.complete_sign_in`` finishes with the code alone.
    """
    email = normalize_email(email)
    check_throttle(session=session, settings=settings, box=box, ctx=ctx, email=email)
    user = get_user_by_email(session=session, email=email)
    if user is None or not user.is_active:
        passwords.burn_verify_time(password, settings=settings)
        count_failure(
            session=session, box=box, ctx=ctx, email=email, user=None, reason="unknown_or_inactive"
        )
        raise InvalidCredentials()
    if not passwords.verify_password(user.password_hash, password, settings=settings):
        count_failure(
            session=session, box=box, ctx=ctx, email=email, user=user, reason="bad_password"
        )
        raise InvalidCredentials()
    if user.totp_enabled:
        if not otp:
            # Audited, but not a throttled failure: the password was right.
            audit_service.record(
                session=session,
                ctx=ctx.as_actor(user.id, user.role),
                action="auth.login",
                outcome="failure",
                entity_type="user",
                entity_id=user.id,
                details={"reason": "otp_required"},
            )
            held = _hold_password_step(session, settings, user) if hold_password_step else None
            session.commit()
            raise OtpRequired(pending_token=held)
        if not consume_otp(session=session, box=box, user=user, code=otp):
            count_failure(
                session=session, box=box, ctx=ctx, email=email, user=user, reason="bad_otp"
            )
            raise InvalidCredentials(N_("The one-time code is not correct or was already used."))
    if passwords.needs_rehash(user.password_hash, settings=settings):
        user.password_hash = passwords.hash_password(password, settings=settings)
    return finish_sign_in(session=session, settings=settings, box=box, ctx=ctx, user=user)


def finish_sign_in(
    *, session: Session, settings: Settings, box: SecretBox, ctx: AuditContext, user: User
) -> SignedIn:
    """Every factor checked: forget the account's failures, open a session, audit, commit."""
    throttle.clear_account(
        session=session, email=user.email, client=throttle.client_hash(box, ctx.client_ip)
    )
    enrollment_only = user.role in STAFF_ROLES and not user.totp_enabled
    signed_in = _open_session(
        session=session, settings=settings, user=user, enrollment_only=enrollment_only
    )
    audit_service.record(
        session=session,
        ctx=ctx.as_actor(user.id, user.role),
        action="auth.login",
        entity_type="session",
        entity_id=signed_in.auth_session.id,
        details={"enrollment_only": enrollment_only} if enrollment_only else None,
    )
    session.commit()
    return signed_in


def _hold_password_step(session: Session, settings: Settings, user: User) -> str:
    """Remember a correct password for a few minutes, under a new random token (its hash)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        PendingSignIn(
            user_id=user.id,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + timedelta(minutes=settings.pending_sign_in_minutes),
        )
    )
    return token


def consume_otp(*, session: Session, box: SecretBox, user: User, code: str) -> bool:
    """Whether ``code`` is the user's current one-time code, unused so far (marks it used)."""
    secret = totp.open_secret(box, user)
    if secret is None:
        return False
    step = totp.accepted_step(secret, code, last_step=user.totp_last_step)
    if step is None:
        return False
    user.totp_last_step = step
    session.add(user)
    return True


def _open_session(
    *, session: Session, settings: Settings, user: User, enrollment_only: bool
) -> SignedIn:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    auth_session = AuthSession(
        user_id=user.id,
        token_hash=hash_token(token),
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=settings.session_absolute_hours),
        enrollment_only=enrollment_only,
    )
    session.add(auth_session)
    session.flush()
    return SignedIn(user=user, auth_session=auth_session, token=token)


def resolve_session(
    *, session: Session, settings: Settings, token: str
) -> tuple[User, AuthSession]:
    """The account behind a token, enforcing revocation, idle timeout and absolute lifetime.

    Every request passes here, so it reads in a read-only transaction (on SQLite: no write
    lock) and writes only when ``last_seen_at`` is due to move, at most once a granule.
    """
    begin_read_only(session)
    found = session.exec(
        select(AuthSession, User)
        .join(User, col(User.id) == col(AuthSession.user_id))
        .where(AuthSession.token_hash == hash_token(token))
    ).first()
    session.commit()
    now = utcnow()
    if found is None:
        raise SessionExpired()
    auth_session, user = found
    if auth_session.revoked_at is not None or not user.is_active:
        raise SessionExpired()
    idle_limit = auth_session.last_seen_at + timedelta(minutes=settings.session_idle_minutes)
    if now >= auth_session.expires_at or now >= idle_limit:
        raise SessionExpired()
    if now - auth_session.last_seen_at >= _LAST_SEEN_GRANULARITY:
        auth_session.last_seen_at = now
        session.add(auth_session)
        session.commit()
    return user, auth_session


def sign_out(*, session: Session, ctx: AuditContext, auth_session_id: uuid.UUID) -> None:
    auth_session = session.get(AuthSession, auth_session_id)
    if auth_session is not None and auth_session.revoked_at is None:
        auth_session.revoked_at = utcnow()
        session.add(auth_session)
    audit_service.record(
        session=session,
        ctx=ctx,
        action="auth.logout",
        entity_type="session",
        entity_id=auth_session_id,
    )
    session.commit()


def revoke_all_sessions(
    *, session: Session, user_id: uuid.UUID, except_id: uuid.UUID | None = None
) -> None:
    open_sessions = session.exec(
        select(AuthSession)
        .where(AuthSession.user_id == user_id)
        .where(col(AuthSession.revoked_at).is_(None))
    ).all()
    for auth_session in open_sessions:
        if auth_session.id != except_id:
            auth_session.revoked_at = utcnow()
            session.add(auth_session)


def set_language(*, session: Session, user: User, language: str) -> None:
    """The account's language: its pages, its e-mails and, for a patient, new cases' opinions."""
    user.language = language
    user.updated_at = utcnow()
    session.add(user)
    session.commit()
