"""JSON API: registration, sign-in and out, the current account, TOTP, staff accounts."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from portal import access
from portal.accounts import password_reset, profile, service, two_step
from portal.accounts.deps import JsonOnly, SameOrigin
from portal.accounts.models import (
    REGISTRATION_RECEIVED,
    AccountUpdate,
    LoginRequest,
    LoginResponse,
    PasswordRequest,
    PasswordResetAsk,
    PasswordResetConfirm,
    PasswordResetReceived,
    RegistrationReceived,
    Role,
    StaffCreate,
    TotpConfirmRequest,
    TotpDisableRequest,
    TotpEnrollment,
    UserCreate,
    UserPublic,
)
from portal.deps import (
    AnonymousCtx,
    BoxDep,
    Caller,
    EnrollingCaller,
    SessionDep,
    SettingsDep,
    csrf_token_for,
)
from portal.i18n import _

router = APIRouter(prefix="/api", tags=["accounts"])


@router.post(
    "/auth/register", status_code=status.HTTP_202_ACCEPTED, dependencies=[SameOrigin, JsonOnly]
)
def register(
    data: UserCreate, session: SessionDep, settings: SettingsDep, ctx: AnonymousCtx
) -> RegistrationReceived:
    """The same answer whether or not the address already has an account (docs/accounts.md)."""
    service.register_patient(session=session, settings=settings, ctx=ctx, data=data)
    return RegistrationReceived(detail=_(REGISTRATION_RECEIVED))


@router.post("/auth/login", dependencies=[SameOrigin, JsonOnly])
def login(
    data: LoginRequest,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
    ctx: AnonymousCtx,
) -> LoginResponse:
    signed_in = service.sign_in(
        session=session,
        settings=settings,
        box=box,
        ctx=ctx,
        email=data.email,
        password=data.password,
        otp=data.otp,
    )
    response.set_cookie(
        settings.cookie_name,
        signed_in.token,
        max_age=settings.session_absolute_hours * 3600,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
        path="/",
    )
    return LoginResponse(
        access_token=signed_in.token,
        role=signed_in.user.role,
        csrf_token=csrf_token_for(box, signed_in.auth_session),
        expires_at=signed_in.auth_session.expires_at,
        totp_enrollment_required=signed_in.auth_session.enrollment_only,
    )


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(caller: EnrollingCaller, session: SessionDep, settings: SettingsDep) -> Response:
    service.sign_out(session=session, ctx=caller.ctx, auth_session_id=caller.auth_session.id)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(
        settings.cookie_name, path="/", secure=settings.cookie_secure, httponly=True
    )
    return response


@router.get("/auth/csrf")
def csrf(caller: EnrollingCaller, box: BoxDep) -> dict[str, str]:
    """The CSRF token to send as ``X-CSRF-Token`` with cookie-authenticated writes."""
    return {"csrf_token": csrf_token_for(box, caller.auth_session)}


@router.get("/me")
def me(caller: EnrollingCaller) -> UserPublic:
    return UserPublic.model_validate(caller.user)


@router.patch("/me")
def update_me(data: AccountUpdate, caller: Caller, session: SessionDep) -> UserPublic:
    """Language, date of birth and phone; fields left out stay, ``null`` clears."""
    sent = data.model_fields_set
    user = profile.update_account(
        session=session,
        ctx=caller.ctx,
        user=caller.user,
        language=data.language,
        date_of_birth=data.date_of_birth if "date_of_birth" in sent else profile.UNSET,
        phone=data.phone if "phone" in sent else profile.UNSET,
    )
    return UserPublic.model_validate(user)


@router.post(
    "/auth/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[SameOrigin, JsonOnly],
)
def ask_password_reset(
    data: PasswordResetAsk,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
    ctx: AnonymousCtx,
) -> PasswordResetReceived:
    """The same answer whether or not the address has an account, or is over the limit."""
    password_reset.request_reset(
        session=session, settings=settings, box=box, ctx=ctx, email=data.email
    )
    return PasswordResetReceived(detail=_(password_reset.REQUEST_RECEIVED))


@router.post(
    "/auth/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[SameOrigin, JsonOnly],
)
def confirm_password_reset(
    data: PasswordResetConfirm,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
    ctx: AnonymousCtx,
) -> None:
    """A new password with the mailed token: every session of the account ends."""
    password_reset.reset_password(
        session=session,
        settings=settings,
        box=box,
        ctx=ctx,
        token=data.token,
        password=data.password,
    )


@router.post("/auth/totp/enroll")
def totp_enroll(
    data: PasswordRequest,
    caller: EnrollingCaller,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
) -> TotpEnrollment:
    return two_step.begin_totp_enrollment(
        session=session,
        settings=settings,
        box=box,
        ctx=caller.ctx,
        user=caller.user,
        password=data.password,
    )


@router.post("/auth/totp/confirm", status_code=status.HTTP_204_NO_CONTENT)
def totp_confirm(
    data: TotpConfirmRequest,
    caller: EnrollingCaller,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
) -> None:
    two_step.confirm_totp_enrollment(
        session=session,
        settings=settings,
        box=box,
        ctx=caller.ctx,
        user=caller.user,
        auth_session=caller.auth_session,
        password=data.password,
        code=data.otp,
    )


@router.post("/auth/totp/disable", status_code=status.HTTP_204_NO_CONTENT)
def totp_disable(
    data: TotpDisableRequest,
    caller: Caller,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
) -> None:
    two_step.disable_totp(
        session=session,
        settings=settings,
        box=box,
        ctx=caller.ctx,
        user=caller.user,
        password=data.password,
        code=data.otp,
    )


@router.post("/users", status_code=status.HTTP_201_CREATED)
def create_account(
    data: StaffCreate, caller: Caller, session: SessionDep, settings: SettingsDep
) -> UserPublic:
    """Admins create accounts of any role; staff then enrol TOTP at their first sign-in."""
    access.require(caller.principal, "users.manage")
    user = service.create_account_as_admin(
        session=session, settings=settings, ctx=caller.ctx, data=data, role=data.role
    )
    return UserPublic.model_validate(user)


@router.get("/users")
def list_accounts(
    caller: Caller, session: SessionDep, role: Role | None = None
) -> list[UserPublic]:
    access.require(caller.principal, "users.manage")
    return [
        UserPublic.model_validate(user)
        for user in service.list_users(session=session, ctx=caller.ctx, role=role)
    ]
