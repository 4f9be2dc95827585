"""Pages: sign in, register, sign out."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request, Response, status
from fastapi.responses import RedirectResponse
from markupsafe import Markup
from pydantic import ValidationError

from portal import i18n
from portal.accounts import profile, second_step, service, two_step
from portal.accounts.deps import PresessionForm, issue_form_token, set_form_cookie
from portal.accounts.models import UserCreate
from portal.deps import AnonymousCtx, BoxDep, SessionDep, SettingsDep
from portal.errors import (
    InvalidInput,
    NotAuthenticated,
    PortalError,
    TooManyRequests,
    http_status,
)
from portal.i18n import N_
from portal.inputs import SUPPORTED_LANGUAGES, SingleLineText
from portal.sealing import SecretBox
from portal.settings import Settings
from portal.web.deps import EnrollingFormCaller, EnrollingPageCaller, FormCaller, PageCaller
from portal.web.errors import readable_validation_error
from portal.web.templating import render

router = APIRouter(include_in_schema=False)

LANGUAGES = list(SUPPORTED_LANGUAGES.items())
REGISTERED_NOTICE = N_(
    "Thank you. Sign in with your e-mail address and the password you chose. If this address "
    "already had an account, nothing was changed and its owner has been sent an e-mail."
)
RESET_NOTICE = N_(
    "Your new password is set, and every device that was signed in to your account has been "
    "signed out. Sign in with the new password."
)
PENDING_COOKIE = "portal_pending_sign_in"
"""Names the server-side ``PendingSignIn`` between the password and the code (HttpOnly)."""


def safe_next(path: str | None) -> str:
    """Only a local path: never an open redirect to another site."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def _signed_in_redirect(settings: Settings, token: str, target: str) -> Response:
    response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        settings.cookie_name,
        token,
        max_age=settings.session_absolute_hours * 3600,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
        path="/",
    )
    return response


def form_page(
    request: Request,
    settings: Settings,
    box: SecretBox,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
) -> Response:
    """A sign-in or registration page, its form carrying a fresh pre-session token."""
    token, nonce = issue_form_token(request, settings, box)
    response = render(request, template, {**context, "form_token": token}, status_code=status_code)
    set_form_cookie(response, settings, nonce)
    return response


@router.get("/login")
def login_page(
    request: Request,
    settings: SettingsDep,
    box: BoxDep,
    next: str = "/",
    registered: str = "",
    reset: str = "",
) -> Response:
    notice = None
    if registered:
        notice = i18n.gettext(REGISTERED_NOTICE)
    elif reset:
        notice = i18n.gettext(RESET_NOTICE)
    context = {"next": safe_next(next), "email": "", "notice": notice}
    return form_page(request, settings, box, "accounts/login.html", context)


@router.post("/login", dependencies=[PresessionForm])
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
    ctx: AnonymousCtx,
    email: Annotated[SingleLineText, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1024)],
    otp: Annotated[SingleLineText, Form(max_length=12)] = "",
    next: Annotated[SingleLineText, Form(max_length=500)] = "/",
) -> Response:
    try:
        signed_in = service.sign_in(
            session=session,
            settings=settings,
            box=box,
            ctx=ctx,
            email=email,
            password=password,
            otp=otp.strip() or None,
            hold_password_step=True,
        )
    except service.OtpRequired as exc:
        if exc.pending_token is None:
            raise
        # The password was right: the next page asks for the code alone (docs/accounts.md).
        target = "/login/code?" + urlencode({"next": safe_next(next)})
        response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
        response.set_cookie(
            pending_cookie_name(settings),
            exc.pending_token,
            max_age=settings.pending_sign_in_minutes * 60,
            httponly=True,
            secure=settings.cookie_secure,
            samesite="strict",
            path="/",
        )
        return response
    except (NotAuthenticated, TooManyRequests) as exc:
        code = 429 if isinstance(exc, TooManyRequests) else 401
        context = {"error": exc.message, "next": safe_next(next), "email": email}
        return form_page(request, settings, box, "accounts/login.html", context, code)
    return _signed_in_redirect(settings, signed_in.token, safe_next(next))


def pending_cookie_name(settings: Settings) -> str:
    return f"__Host-{PENDING_COOKIE}" if settings.cookie_secure else PENDING_COOKIE


def _without_pending(response: Response, settings: Settings) -> Response:
    response.delete_cookie(
        pending_cookie_name(settings), path="/", secure=settings.cookie_secure, httponly=True
    )
    return response


@router.get("/login/code")
def login_code_page(
    request: Request, session: SessionDep, settings: SettingsDep, box: BoxDep, next: str = "/"
) -> Response:
    """The second step: only the one-time code (the password is held server-side)."""
    token = request.cookies.get(pending_cookie_name(settings), "")
    if not token or not second_step.is_pending(session=session, token=token):
        expired = second_step.PendingSignInExpired()
        context = {"error": expired.message, "next": safe_next(next), "email": ""}
        response = form_page(request, settings, box, "accounts/login.html", context, 401)
        return _without_pending(response, settings)
    fresh: dict[str, Any] = {"next": safe_next(next), "error": None}
    return form_page(request, settings, box, "accounts/login_code.html", fresh)


@router.post("/login/code", dependencies=[PresessionForm])
def login_code(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
    ctx: AnonymousCtx,
    otp: Annotated[SingleLineText, Form(max_length=12)],
    next: Annotated[SingleLineText, Form(max_length=500)] = "/",
) -> Response:
    token = request.cookies.get(pending_cookie_name(settings), "")
    try:
        signed_in = second_step.complete_sign_in(
            session=session, settings=settings, box=box, ctx=ctx, token=token, otp=otp.strip()
        )
    except second_step.PendingSignInExpired as exc:
        context = {"error": exc.message, "next": safe_next(next), "email": ""}
        response = form_page(request, settings, box, "accounts/login.html", context, 401)
        return _without_pending(response, settings)
    except (NotAuthenticated, TooManyRequests) as exc:
        code = 429 if isinstance(exc, TooManyRequests) else 401
        context = {"error": exc.message, "next": safe_next(next)}
        return form_page(request, settings, box, "accounts/login_code.html", context, code)
    response = _signed_in_redirect(settings, signed_in.token, safe_next(next))
    return _without_pending(response, settings)


@router.get("/register")
def register_page(request: Request, settings: SettingsDep, box: BoxDep) -> Response:
    form = {"full_name": "", "email": "", "language": i18n.current(), "date_of_birth": ""}
    context = {"form": form, "opinion_languages": LANGUAGES}
    return form_page(request, settings, box, "accounts/register.html", context)


@router.post("/register", dependencies=[PresessionForm])
def register(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
    ctx: AnonymousCtx,
    full_name: Annotated[str, Form(max_length=200)],
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1024)],
    language: Annotated[str, Form(max_length=8)] = "en",
    date_of_birth: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """New and known addresses answer alike: to the sign-in page (docs/accounts.md)."""
    try:
        data = UserCreate(
            email=email,
            password=password,
            full_name=full_name,
            language=language,
            date_of_birth=birth_date_field(date_of_birth),
        )
        service.register_patient(session=session, settings=settings, ctx=ctx, data=data)
    except (ValidationError, PortalError) as exc:
        if isinstance(exc, ValidationError):
            error, code = readable_validation_error(exc), 422
        else:
            error, code = exc.message, http_status(exc)
        # Echo the form only when it is printable text (the template escapes it anyway).
        form = {
            "full_name": full_name,
            "email": email,
            "language": language,
            "date_of_birth": date_of_birth,
        }
        shown = {key: value if value.isprintable() else "" for key, value in form.items()}
        context = {"error": error, "form": shown, "opinion_languages": LANGUAGES}
        return form_page(request, settings, box, "accounts/register.html", context, code)
    return RedirectResponse("/login?registered=1", status_code=status.HTTP_303_SEE_OTHER)


def birth_date_field(value: str) -> date | None:
    """A date input's value (``YYYY-MM-DD``; empty: none), checked for plausibility."""
    if not value.strip():
        return None
    try:
        born = date.fromisoformat(value.strip())
    except ValueError as exc:
        raise profile.BirthDateInvalid() from exc
    return profile.checked_birth_date(born)


def _with_language_cookie(response: Response, settings: Settings, language: str) -> Response:
    response.set_cookie(
        i18n.LANGUAGE_COOKIE,
        language,
        max_age=365 * 24 * 3600,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
        path="/",
    )
    return response


@router.get("/language/{code}")
def choose_language(code: str, settings: SettingsDep, next: str = "/") -> Response:
    """The language switcher before sign-in: a cookie (a preference, not a secret)."""
    language = i18n.supported(code)
    response = RedirectResponse(safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    return _with_language_cookie(response, settings, language) if language else response


@router.post("/account/language")
def set_account_language(
    caller: FormCaller,
    session: SessionDep,
    settings: SettingsDep,
    language: Annotated[str, Form(max_length=16)],
    next: Annotated[SingleLineText, Form(max_length=500)] = "/",
) -> Response:
    """The switcher once signed in: the account's setting (pages and e-mails) and the cookie."""
    chosen = i18n.supported(language)
    if chosen is None:
        raise InvalidInput(i18n.gettext("This language is not available."))
    service.set_language(session=session, user=caller.user, language=chosen)
    response = RedirectResponse(safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
    return _with_language_cookie(response, settings, chosen)


def _account_page(
    request: Request, form: dict[str, str], error: str | None = None, status_code: int = 200
) -> Response:
    context = {"form": form, "error": error, "opinion_languages": LANGUAGES}
    return render(request, "accounts/account.html", context, status_code=status_code)


@router.get("/account")
def account_page(request: Request, caller: PageCaller, saved: str = "") -> Response:
    """Account settings: language, date of birth, phone; links to sign-in security."""
    user = caller.user
    form = {
        "language": user.language,
        "date_of_birth": user.date_of_birth.isoformat() if user.date_of_birth else "",
        "phone": profile.display_phone(user.phone),
        "saved": "1" if saved else "",
    }
    return _account_page(request, form)


@router.post("/account")
def save_account(
    request: Request,
    caller: FormCaller,
    session: SessionDep,
    settings: SettingsDep,
    language: Annotated[str, Form(max_length=16)],
    date_of_birth: Annotated[str, Form(max_length=10)] = "",
    phone: Annotated[SingleLineText, Form(max_length=40)] = "",
) -> Response:
    form = {"language": language, "date_of_birth": date_of_birth, "phone": phone, "saved": ""}
    try:
        chosen = language.strip().lower()
        if chosen not in SUPPORTED_LANGUAGES:
            raise InvalidInput(i18n.gettext("This language is not available."))
        profile.update_account(
            session=session,
            ctx=caller.ctx,
            user=caller.user,
            language=chosen,
            date_of_birth=birth_date_field(date_of_birth),
            phone=phone,
        )
    except PortalError as exc:  # checked before anything was written
        shown = {key: value if value.isprintable() else "" for key, value in form.items()}
        return _account_page(request, shown, exc.message, http_status(exc))
    response = RedirectResponse("/account?saved=1", status_code=status.HTTP_303_SEE_OTHER)
    interface = i18n.supported(chosen)
    return _with_language_cookie(response, settings, interface) if interface else response


@router.post("/logout")
def logout(caller: FormCaller, session: SessionDep, settings: SettingsDep) -> Response:
    service.sign_out(session=session, ctx=caller.ctx, auth_session_id=caller.auth_session.id)
    response = RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(
        settings.cookie_name, path="/", secure=settings.cookie_secure, httponly=True
    )
    return response


@router.get("/account/two-step")
def two_step_page(request: Request, caller: EnrollingPageCaller) -> Response:
    """Two-step sign-in: its state, and the set-up for accounts without it."""
    return render(request, "accounts/two_step.html", {"enrollment": None, "error": None})


@router.post("/account/two-step/start")
def two_step_start(
    request: Request,
    caller: EnrollingFormCaller,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """A new secret for the authenticator app, after the current password."""
    try:
        enrollment = two_step.begin_totp_enrollment(
            session=session,
            settings=settings,
            box=box,
            ctx=caller.ctx,
            user=caller.user,
            password=password,
        )
    except (two_step.WrongPassword, TooManyRequests) as exc:
        failed = {"enrollment": None, "error": exc.message}
        return render(request, "accounts/two_step.html", failed, status_code=http_status(exc))
    qr = Markup(enrollment.qr_svg)  # noqa: S704 - segno draws our own URI as paths, no text
    context = {"enrollment": enrollment, "qr": qr, "error": None}
    return render(request, "accounts/two_step.html", context)


@router.post("/account/two-step/confirm")
def two_step_confirm(
    request: Request,
    caller: EnrollingFormCaller,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
    code: Annotated[SingleLineText, Form(max_length=12)],
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    try:
        two_step.confirm_totp_enrollment(
            session=session,
            settings=settings,
            box=box,
            ctx=caller.ctx,
            user=caller.user,
            auth_session=caller.auth_session,
            password=password,
            code=code.strip(),
        )
    except (InvalidInput, two_step.WrongPassword, TooManyRequests) as exc:
        # The secret stays as issued: the page asks to start again rather than show it twice.
        context = {"enrollment": None, "error": exc.message}
        return render(request, "accounts/two_step.html", context, status_code=http_status(exc))
    return RedirectResponse("/account/two-step?done=1", status_code=status.HTTP_303_SEE_OTHER)
