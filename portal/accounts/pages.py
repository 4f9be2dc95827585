"""Pages: sign in, register, sign out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response, status
from fastapi.responses import RedirectResponse
from markupsafe import Markup
from pydantic import ValidationError

from portal.accounts import service
from portal.accounts.models import UserCreate
from portal.deps import AnonymousCtx, BoxDep, SessionDep, SettingsDep
from portal.errors import (
    InvalidInput,
    NotAuthenticated,
    PortalError,
    TooManyRequests,
    http_status,
)
from portal.settings import Settings
from portal.web.deps import EnrollingFormCaller, EnrollingPageCaller, FormCaller
from portal.web.errors import readable_validation_error
from portal.web.templating import render

router = APIRouter(include_in_schema=False)

LANGUAGES = [
    ("en", "English"),
    ("ru", "Русский"),
    ("de", "Deutsch"),
    ("fr", "Français"),
    ("es", "Español"),
    ("it", "Italiano"),
    ("uk", "Українська"),
    ("ar", "العربية"),
    ("he", "עברית"),
    ("tr", "Türkçe"),
    ("zh", "中文"),
]


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


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "accounts/login.html", {"next": safe_next(next), "email": ""})


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    box: BoxDep,
    ctx: AnonymousCtx,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1024)],
    otp: Annotated[str, Form(max_length=12)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
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
        )
    except (NotAuthenticated, TooManyRequests) as exc:
        code = 429 if isinstance(exc, TooManyRequests) else 401
        context = {"error": exc.message, "next": safe_next(next), "email": email}
        return render(request, "accounts/login.html", context, status_code=code)
    return _signed_in_redirect(settings, signed_in.token, safe_next(next))


@router.get("/register")
def register_page(request: Request) -> Response:
    form = {"full_name": "", "email": "", "language": "en"}
    return render(request, "accounts/register.html", {"form": form, "languages": LANGUAGES})


@router.post("/register")
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
) -> Response:
    form = {"full_name": full_name, "email": email, "language": language}
    try:
        data = UserCreate(email=email, password=password, full_name=full_name, language=language)
        service.register_patient(session=session, settings=settings, ctx=ctx, data=data)
        signed_in = service.sign_in(
            session=session,
            settings=settings,
            box=box,
            ctx=ctx,
            email=email,
            password=password,
            otp=None,
        )
    except ValidationError as exc:
        error = readable_validation_error(exc)
        context = {"error": error, "form": form, "languages": LANGUAGES}
        return render(request, "accounts/register.html", context, status_code=422)
    except PortalError as exc:
        context = {"error": exc.message, "form": form, "languages": LANGUAGES}
        return render(request, "accounts/register.html", context, status_code=http_status(exc))
    return _signed_in_redirect(settings, signed_in.token, "/cases")


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
) -> Response:
    enrollment = service.begin_totp_enrollment(
        session=session, settings=settings, box=box, ctx=caller.ctx, user=caller.user
    )
    qr = Markup(enrollment.qr_svg)  # noqa: S704 - segno draws our own URI as paths, no text
    context = {"enrollment": enrollment, "qr": qr, "error": None}
    return render(request, "accounts/two_step.html", context)


@router.post("/account/two-step/confirm")
def two_step_confirm(
    request: Request,
    caller: EnrollingFormCaller,
    session: SessionDep,
    box: BoxDep,
    code: Annotated[str, Form(max_length=12)],
) -> Response:
    try:
        service.confirm_totp_enrollment(
            session=session,
            box=box,
            ctx=caller.ctx,
            user=caller.user,
            auth_session=caller.auth_session,
            code=code.strip(),
        )
    except InvalidInput as exc:
        context = {"enrollment": None, "error": exc.message}
        return render(request, "accounts/two_step.html", context, status_code=422)
    return RedirectResponse("/account/two-step?done=1", status_code=status.HTTP_303_SEE_OTHER)
