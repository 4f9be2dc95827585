"""``portal init``, ``portal run`` and ``portal serve``."""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
from contextlib import ExitStack
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from portal import demo, migrate
from portal.app import create_app
from portal.db import create_db_engine, session_scope
from portal.http_timeouts import PortalConfig
from portal.observability import configure_logging
from portal.sealing import SecretBox
from portal.settings import Settings
from storage.embedded import EmbeddedS3
from storage.keys import LocalKeyring
from storage.vault import build_vault

log = logging.getLogger(__name__)


def init(settings: Settings, *, with_demo: bool) -> list[str]:
    """Migrate the database, create the local keyring and (optionally) demo accounts.

    Safe to run again: nothing that exists is replaced. Returns lines to show the operator.
    """
    messages = []
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)
    engine = create_db_engine(settings.database_url)
    try:
        migrate.upgrade(engine)
        messages.append("database is at the newest schema")
        if settings.storage.key_provider == "local" and LocalKeyring.ensure(
            settings.storage.keyring_path
        ):
            messages.append(f"created local keyring {settings.storage.keyring_path} (mode 0600)")
        if with_demo:
            if settings.production:
                raise SystemExit("refusing to create demo accounts in production")
            box = SecretBox(settings.secret_key.get_secret_value())
            with session_scope(engine) as session:
                created = demo.ensure_demo_accounts(session=session, settings=settings, box=box)
                messages.append(demo.ensure_treatment_guide(session=session))
            if created:
                text = demo.describe(created, issuer=settings.totp_issuer)
                demo.save(text, settings.data_dir / "demo-accounts.txt")
                messages.append(text)
    finally:
        engine.dispose()
    return messages


def is_loopback(url: str | None) -> bool:
    host = urlsplit(url or "").hostname
    return host in {"127.0.0.1", "localhost", "::1"}


def embedded_s3_for(settings: Settings) -> EmbeddedS3:
    storage = settings.storage
    port = urlsplit(storage.endpoint_url or "").port or 8333
    return EmbeddedS3(
        data_dir=storage.embedded_dir,
        s3_port=port,
        access_key=storage.access_key_id,
        secret_key=storage.secret_access_key.get_secret_value(),
        bucket=storage.bucket,
    )


GC_THRESHOLDS = (10_000, 10, 10)
"""The collector's thresholds while serving (CPython's defaults are 700, 10, 10)."""


def settle_heap() -> None:
    """Keep the garbage collector's pauses short while the server answers requests.

    Everything built at start-up (modules, the DICOM dictionary, routes, templates: some
    280,000 objects) lives as long as the process. Without this, every full collection
    walks all of them, a pause of 100 to 180 ms on the 2-core machine that stalls every
    request in flight, about once every 20 page views. Frozen, they are skipped; the higher
    first threshold makes young collections less frequent (docs/scale.md, "Where the time
    went").
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def served_app() -> FastAPI:
    """The application as each ``portal serve`` worker process builds it (uvicorn factory)."""
    app = create_app(Settings())
    settle_heap()
    return app


def server_config(settings: Settings, app: Any) -> PortalConfig:
    """uvicorn's configuration for the portal: ``app`` or, with several workers, its factory.

    Time limits on the connection (docs/uploads.md, "Slow clients"): the request line and
    headers must arrive within ``PORTAL_HTTP_HEADER_TIMEOUT_SECONDS``; an idle keep-alive
    connection closes after ``PORTAL_HTTP_KEEP_ALIVE_SECONDS``; upload bodies have their own
    stall timeout in the routes.
    """
    return PortalConfig(
        app,
        header_timeout=settings.http_header_timeout_seconds,
        timeout_keep_alive=settings.http_keep_alive_seconds,
        factory=isinstance(app, str),
        workers=settings.workers if isinstance(app, str) else None,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        server_header=False,
    )


def serve(settings: Settings) -> None:
    """Serve the portal with uvicorn (production entry point; nothing else is started).

    What ``uvicorn.run`` does, with the portal's own configuration object (it carries the
    request-head deadline to every worker process).
    """
    if settings.workers > 1:
        # Each worker process builds the app from the same environment these settings came from.
        config = server_config(settings, "portal.runner:served_app")
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn has shut down already
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    app = create_app(settings)
    settle_heap()
    server = uvicorn.Server(server_config(settings, app))
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise SystemExit(3)  # what uvicorn.run exits with when start-up fails


def _stop_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def run(settings: Settings, *, with_demo: bool) -> None:
    """Everything for a laptop: init, SeaweedFS as a child process, then the server.

    Ctrl-C stops uvicorn first, then SeaweedFS; data under ``var/`` stays for the next run.
    """
    configure_logging(level=settings.log_level, log_format=settings.log_format)
    # A service manager stops us with SIGTERM: unwind like Ctrl-C so SeaweedFS stops too
    # (uvicorn hands the signal back after its own shutdown).
    signal.signal(signal.SIGTERM, _stop_quietly)
    for line in init(settings, with_demo=with_demo):
        print(line, flush=True)
    with ExitStack() as stack:
        if settings.storage.embedded:
            if not is_loopback(settings.storage.endpoint_url):
                raise SystemExit("embedded SeaweedFS only serves a loopback endpoint")
            print(f"starting SeaweedFS on {settings.storage.endpoint_url} …", flush=True)
            stack.enter_context(embedded_s3_for(settings))
        build_vault(settings.storage).ensure_bucket()
        print(
            f"serving the portal at http://{settings.host}:{settings.port} (Ctrl-C stops)",
            flush=True,
        )
        serve(settings)
