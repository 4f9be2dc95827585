"""The FastAPI application: built by ``create_app``, resources opened in its lifespan."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from portal import housekeeping, legacy_text, openapi
from portal.accounts.pages import router as account_pages
from portal.accounts.reset_pages import router as password_reset_pages
from portal.accounts.views import router as accounts_router
from portal.audit.views import router as audit_router
from portal.breakglass.views import router as break_glass_router
from portal.cases.pages import router as case_pages
from portal.cases.views import consent_router
from portal.cases.views import router as cases_router
from portal.db import create_db_engine
from portal.deps import refuse_nul_characters
from portal.dicomweb.pages import router as dicomweb_pages
from portal.dicomweb.pixel_views import router as dicomweb_pixels_router
from portal.dicomweb.token_views import router as dicomweb_tokens_router
from portal.dicomweb.views import router as dicomweb_router
from portal.errors import (
    InvalidInput,
    NotAuthenticated,
    PortalError,
    TooManyRequests,
    describe_validation_errors,
    http_status,
)
from portal.health.views import router as health_router
from portal.i18n import N_, _
from portal.intake import upload_jobs
from portal.intake.capacity import UploadCapacity
from portal.intake.tus_views import router as tus_router
from portal.intake.upload_jobs import HANDLERS as UPLOAD_JOBS
from portal.intake.views import router as intake_router
from portal.jobs.worker import JobWorkers
from portal.middleware import (
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from portal.objects.texts import bind_vault
from portal.ohif.views import router as ohif_router
from portal.public.pages import router as public_pages
from portal.records.pages import router as record_pages
from portal.records.pool import RenderLimits, RenderPool
from portal.records.views import router as records_router
from portal.sealing import SecretBox
from portal.settings import Settings
from portal.viewer.cache import BoundedCache
from portal.viewer.views import router as viewer_router
from portal.web.errors import is_page, page_error, page_status
from portal.web.templating import STATIC_DIR
from reviewers.fhir.views import router as fhir_router
from reviewers.pages import router as review_pages
from reviewers.sharing.pages import router as sharing_pages
from reviewers.sharing.views import router as sharing_router
from reviewers.treatment.pages import router as treatment_pages
from reviewers.treatment.views import router as treatment_router
from reviewers.views import router as review_router
from reviewers.views import specialists_router
from storage.errors import KeyUnavailable, StorageError, StorageUnavailable
from storage.vault import Vault, build_vault

log = logging.getLogger(__name__)

JSON_BODY_LIMIT = 1024 * 1024
STREAMING_PATHS = re.compile(
    r"^/api/uploads(/|$)|^/api/cases/[^/]+/files$|^/api/cases/[^/]+/dicomweb/studies(/[^/]+)?$"
)


def vault_checks(vault: Vault) -> Callable[[], dict[str, str]]:
    def check() -> dict[str, str]:
        try:
            vault.check()
        except StorageUnavailable:
            return {"object_storage": "unreachable", "keys": "not checked"}
        except KeyUnavailable:
            return {"object_storage": "ok", "keys": "unavailable"}
        except StorageError as exc:
            log.warning("readiness: storage check failed", extra={"error": type(exc).__name__})
            return {"object_storage": "error", "keys": "not checked"}
        return {"object_storage": "ok", "keys": "ok"}

    return check


def _open_vault(settings: Settings) -> Vault:
    """Build the vault; a missing keyring stops start-up with the fix in the message."""
    try:
        vault = build_vault(settings.storage)
    except KeyUnavailable as exc:
        raise RuntimeError(f"cannot start: {exc}") from exc
    if settings.storage.create_bucket:
        try:
            vault.ensure_bucket()
        except StorageError:
            # Not fatal: /readyz reports storage as unreachable until it answers.
            log.warning("object storage unreachable at start-up; bucket not ensured")
    return vault


def seal_legacy_text(engine: Engine, vault: Vault) -> None:
    """Seal free text an upgrade left in clear (migration 0006) before serving anything."""
    with bind_vault(Session(engine, expire_on_commit=False), vault) as session:
        try:
            pending = legacy_text.pending_count(session=session)
        except SQLAlchemyError:
            # Not fatal here: /readyz reports the database until it answers.
            log.warning("database unreachable at start-up; sealing of old text not checked")
            return
        if not pending:
            return
        try:
            sealed = legacy_text.seal_pending(session=session)
        except StorageError as exc:
            raise RuntimeError(
                "cannot start: free text from before the upgrade still waits to be sealed "
                "and object storage or the keys are unavailable; start again when they answer"
            ) from exc
    log.info("sealed free text left by the upgrade", extra={"values": sealed})


def resume_stalled_uploads(engine: Engine) -> None:
    """Uploads whose every byte arrived before completion became a job get their job now."""
    try:
        upload_jobs.resume_stalled(engine=engine)
    except SQLAlchemyError:
        # Not fatal here: /readyz reports the database; housekeeping does this again later.
        log.warning("database unreachable at start-up; stalled uploads not checked")


def create_app(settings: Settings | None = None, *, vault: Vault | None = None) -> FastAPI:
    """Build the application. Nothing is connected until the lifespan starts."""
    settings = settings or Settings()
    settings.check_production_ready()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_db_engine(settings.database_url)
        app.state.engine = engine
        app.state.vault = vault or _open_vault(settings)
        app.state.vault_checks = vault_checks(app.state.vault)
        app.state.dicomweb_frames = BoundedCache(settings.dicomweb_frame_cache_mb * 1024 * 1024)
        # Before the sweep starts: the render workers' fork server is started with a trimmed
        # environment, which must not race other threads reading it.
        app.state.record_renderer = RenderPool(RenderLimits.from_settings(settings))
        app.state.upload_capacity = UploadCapacity(settings)
        await anyio.to_thread.run_sync(seal_legacy_text, engine, app.state.vault)
        await anyio.to_thread.run_sync(resume_stalled_uploads, engine)
        app.state.jobs = JobWorkers(
            engine=engine, vault=app.state.vault, settings=settings, handlers=UPLOAD_JOBS
        )
        async with anyio.create_task_group() as tasks:
            if settings.jobs_enabled:
                for _worker in range(settings.jobs_workers):
                    tasks.start_soon(app.state.jobs.run_forever)
            if settings.sweep_enabled:
                tasks.start_soon(
                    functools.partial(
                        housekeeping.run_forever,
                        engine=engine,
                        vault=app.state.vault,
                        settings=settings,
                    )
                )
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()
                await anyio.to_thread.run_sync(app.state.record_renderer.close)
                engine.dispose()

    app = FastAPI(
        title="Second Opinion Portal",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None if settings.production else "/api/docs",
        redoc_url=None,
        openapi_url=None if settings.production else "/api/openapi.json",
    )
    app.state.settings = settings
    app.state.box = SecretBox(settings.secret_key.get_secret_value())

    routers = (
        health_router,
        accounts_router,
        cases_router,
        consent_router,
        break_glass_router,
        intake_router,
        tus_router,
        audit_router,
        fhir_router,
        review_router,
        specialists_router,
        viewer_router,
        records_router,
        dicomweb_router,
        dicomweb_pixels_router,
        dicomweb_tokens_router,
        public_pages,
        treatment_router,
        sharing_router,
        account_pages,
        password_reset_pages,
        case_pages,
        record_pages,
        review_pages,
        treatment_pages,
        dicomweb_pages,
        sharing_pages,
        ohif_router,
    )
    for router in routers:
        app.include_router(router, dependencies=[Depends(refuse_nul_characters)])
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _install_error_handlers(app)
    openapi.install(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=JSON_BODY_LIMIT, exempt=STREAMING_PATHS)
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.cookie_secure)
    app.add_middleware(RequestContextMiddleware)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PortalError)
    async def portal_error(request: Request, exc: PortalError) -> Response:
        if is_page(request):
            return page_error(request, exc)
        headers = (
            {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
        )
        if isinstance(exc, NotAuthenticated):
            headers = {"WWW-Authenticate": "Bearer"}
        return JSONResponse({"detail": exc.message}, status_code=http_status(exc), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        detail = describe_validation_errors(exc.errors())
        if is_page(request):
            return page_error(request, InvalidInput(detail))
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc.__cause__, UnicodeDecodeError):
            # FastAPI answers 400 for a JSON body that is not even text; bad JSON is 422.
            return await validation_error(request, _not_json())
        detail = exc.detail if isinstance(exc.detail, str) else ""
        if is_page(request):
            # The error page words a missing page itself (``page_status``).
            shown = detail if exc.status_code == 404 and detail else None
            return page_status(
                request, exc.status_code, shown or _framework_detail(exc.status_code, detail)
            )
        return JSONResponse(
            {"detail": _framework_detail(exc.status_code, detail)},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(ClientDisconnect)
    async def client_went_away(request: Request, exc: ClientDisconnect) -> Response:
        # Not a fault of ours: a browser tab closed or a network dropped mid-upload.
        route = getattr(request.scope.get("route"), "path", "(unmatched)")
        log.info("client disconnected before the request finished", extra={"route": route})
        return Response(status_code=400)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        request_id = getattr(request.state, "request_id", "")
        detail = _(
            "Something went wrong on our side. Reference: %(reference)s.", reference=request_id
        )
        if is_page(request):
            return page_status(request, 500, detail)
        return JSONResponse({"detail": detail}, status_code=500)


_FRAMEWORK_DETAILS = {
    # Starlette answers these with the bare reason phrase (``Not Found``); said in full here.
    404: N_("There is nothing at this address."),
    405: N_("This address does not take this method."),
}


def _framework_detail(status_code: int, detail: str) -> str:
    """The detail of an ``HTTPException`` in the caller's language: the framework's own
    reason phrases are worded and translated; any other detail is kept as it was raised."""
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        phrase = ""
    if detail and detail != phrase:
        return detail
    return _(_FRAMEWORK_DETAILS.get(status_code, N_("The request could not be completed.")))


def _not_json() -> RequestValidationError:
    return RequestValidationError([{"type": "json_invalid", "loc": ("body",), "msg": ""}])
