"""Two-step sign-in and asking again: TOTP set-up and removal, accounts enrolled by an
operator, and the password (with a one-time code) asked again before a weighty act."""

from __future__ import annotations

from sqlmodel import Session

from portal.accounts import passwords, service, totp
from portal.accounts.models import STAFF_ROLES, AuthSession, Role, TotpEnrollment, User, UserCreate
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.db import utcnow
from portal.errors import Conflict, Forbidden, InvalidInput
from portal.i18n import N_
from portal.sealing import SecretBox
from portal.settings import Settings


class WrongPassword(Forbidden):
    default_message = N_("The password is not correct.")


def require_password(
    *,
    session: Session,
    settings: Settings,
    box: SecretBox,
    ctx: AuditContext,
    user: User,
    password: str,
    purpose: str,
) -> None:
    """The signed-in user's current password, asked again before their sign-in changes.

    Throttled and counted like a sign-in: a stolen session cannot be used to guess it.
    """
    service.check_throttle(session=session, settings=settings, box=box, ctx=ctx, email=user.email)
    if not passwords.verify_password(user.password_hash, password, settings=settings):
        session.rollback()
        reason = f"reauth_{purpose}"
        service.count_failure(
            session=session, box=box, ctx=ctx, email=user.email, user=user, reason=reason
        )
        raise WrongPassword()


def begin_totp_enrollment(
    *,
    session: Session,
    settings: Settings,
    box: SecretBox,
    ctx: AuditContext,
    user: User,
    password: str,
) -> TotpEnrollment:
    """Issue a new (not yet active) secret; it becomes active when a code is confirmed."""
    if user.totp_enabled:
        raise Conflict(N_("Two-step sign-in is already set up for this account."))
    require_password(
        session=session,
        settings=settings,
        box=box,
        ctx=ctx,
        user=user,
        password=password,
        purpose="totp_enroll",
    )
    secret = totp.new_secret()
    user.totp_secret_sealed = totp.seal_secret(box, secret)
    user.totp_last_step = None
    session.add(user)
    audit_service.record(
        session=session,
        ctx=ctx,
        action="auth.totp_enroll_start",
        entity_type="user",
        entity_id=user.id,
    )
    session.commit()
    uri = totp.provisioning_uri(secret, email=user.email, issuer=settings.totp_issuer)
    return TotpEnrollment(secret=secret, otpauth_uri=uri, qr_svg=totp.qr_svg(uri))


def confirm_totp_enrollment(
    *,
    session: Session,
    settings: Settings,
    box: SecretBox,
    ctx: AuditContext,
    user: User,
    auth_session: AuthSession,
    password: str,
    code: str,
) -> None:
    """Activate TOTP with the password and a first valid code; lifts an enrolment-only session."""
    if user.totp_enabled:
        raise Conflict(N_("Two-step sign-in is already set up for this account."))
    if user.totp_secret_sealed is None:
        raise Conflict(N_("Start the set-up first to get a secret for your authenticator app."))
    require_password(
        session=session,
        settings=settings,
        box=box,
        ctx=ctx,
        user=user,
        password=password,
        purpose="totp_confirm",
    )
    if not service.consume_otp(session=session, box=box, user=user, code=code):
        raise InvalidInput(
            N_("The code is not correct. Check the time on your phone and try again.")
        )
    user.totp_enabled = True
    user.updated_at = utcnow()
    auth_session.enrollment_only = False
    session.add_all([user, auth_session])
    service.revoke_all_sessions(session=session, user_id=user.id, except_id=auth_session.id)
    audit_service.record(
        session=session, ctx=ctx, action="auth.totp_enabled", entity_type="user", entity_id=user.id
    )
    session.commit()


def disable_totp(
    *,
    session: Session,
    settings: Settings,
    box: SecretBox,
    ctx: AuditContext,
    user: User,
    password: str,
    code: str,
) -> None:
    """Patients may turn TOTP off again (with password and a current code); staff may not."""
    if user.role in STAFF_ROLES:
        raise Forbidden(N_("Two-step sign-in is required for staff accounts."))
    if not user.totp_enabled:
        raise Conflict(N_("Two-step sign-in is not turned on."))
    require_password(
        session=session,
        settings=settings,
        box=box,
        ctx=ctx,
        user=user,
        password=password,
        purpose="totp_disable",
    )
    if not service.consume_otp(session=session, box=box, user=user, code=code):
        raise InvalidInput(N_("The code is not correct."))
    user.totp_enabled = False
    user.totp_secret_sealed = None
    user.updated_at = utcnow()
    session.add(user)
    audit_service.record(
        session=session, ctx=ctx, action="auth.totp_disabled", entity_type="user", entity_id=user.id
    )
    session.commit()


def enable_totp_with_secret(*, session: Session, box: SecretBox, user: User, secret: str) -> None:
    """For ``portal users add``: enrol a staff member directly with a generated secret."""
    user.totp_secret_sealed = totp.seal_secret(box, secret)
    user.totp_enabled = True
    session.add(user)


def create_enrolled_account(
    *,
    session: Session,
    settings: Settings,
    box: SecretBox,
    ctx: AuditContext,
    data: UserCreate,
    role: Role,
    details: dict[str, str | bool] | None = None,
) -> tuple[User, str | None]:
    """An account made by an operator (CLI, demo): staff are enrolled in TOTP at once.

    Returns the account and, for staff, the new TOTP secret to hand over once. The caller
    commits.
    """
    user = service.create_user(session=session, settings=settings, data=data, role=role)
    secret = None
    if role in STAFF_ROLES:
        secret = totp.new_secret()
        enable_totp_with_secret(session=session, box=box, user=user, secret=secret)
    audit_service.record(
        session=session,
        ctx=ctx,
        action="account.create",
        entity_type="user",
        entity_id=user.id,
        details={"role": role.value, **(details or {})},
    )
    return user, secret


class ReauthenticationFailed(Forbidden):
    default_message = N_("The password or the one-time code is not correct.")


def reauthenticate(
    *,
    session: Session,
    settings: Settings,
    box: SecretBox,
    ctx: AuditContext,
    user: User,
    password: str,
    otp: str,
    purpose: str,
) -> None:
    """Confirm a signed-in user's identity again (password and TOTP) before a weighty act.

    Failures count towards the same throttle as sign-in, so a stolen session cannot be used
    to guess the password.
    """
    service.check_throttle(session=session, settings=settings, box=box, ctx=ctx, email=user.email)
    if not user.totp_enabled:
        raise Forbidden(N_("Set up two-step sign-in (an authenticator app) before signing."))
    if not passwords.verify_password(
        user.password_hash, password, settings=settings
    ) or not service.consume_otp(session=session, box=box, user=user, code=otp):
        session.rollback()
        reason = f"reauth_{purpose}"
        service.count_failure(
            session=session, box=box, ctx=ctx, email=user.email, user=user, reason=reason
        )
        raise ReauthenticationFailed()
    audit_service.record(
        session=session,
        ctx=ctx,
        action="auth.reauthenticate",
        entity_type="user",
        entity_id=user.id,
        details={"purpose": purpose},
    )
