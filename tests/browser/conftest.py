"""Real Chromium (Debian's, driven by Playwright) against the portal served on a loopback port.

Browser tests run on SQLite only: the database backends are covered by the API tests, and a
browser session is the slowest thing the suite does. Uploads can be slowed down on the server
side (``throttle``) so that a test can act while a file is part-way through.
"""

from __future__ import annotations

import asyncio
import io
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi import FastAPI
from pydicom import dcmread
from pydicom.uid import generate_uid
from sqlmodel import Session, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.db import begin_read_only
from portal.intake import tus
from portal.intake.models import TusUpload
from portal.objects.texts import bind_vault
from tests.fixtures.app import PASSWORD
from tests.fixtures.live import LiveServer
from tests.fixtures.logs import SENSITIVE
from tests.portal import samples
from tests.services import unavailable

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Request

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
MIB = 1024 * 1024


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium for the whole session (never a browser Playwright downloads)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def database_url(sqlite_template: Path, tmp_path: Path) -> str:
    """Overrides the suite's SQLite-and-PostgreSQL parameter: one fresh SQLite file per test."""
    path = tmp_path / "portal.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@dataclass
class Throttle:
    """How fast the server reads upload bodies; ``None`` is as fast as it can."""

    bytes_per_second: float | None = None


class SlowUploads:
    """ASGI wrapper reading tus request bodies no faster than the throttle allows."""

    def __init__(self, app: ASGIApp, throttle: Throttle) -> None:
        self.app = app
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/uploads"):
            await self.app(scope, receive, send)
            return

        async def slow_receive() -> Message:
            message = await receive()
            rate = self.throttle.bytes_per_second
            if rate and message["type"] == "http.request":
                await asyncio.sleep(len(message.get("body", b"")) / rate)
            return message

        await self.app(scope, slow_receive, send)


@pytest.fixture
def throttle() -> Throttle:
    return Throttle()


@pytest.fixture
def live(app: FastAPI, throttle: Throttle) -> Iterator[LiveServer]:
    """The test's app over real HTTP, with a throttle on upload bodies."""
    app.add_middleware(SlowUploads, throttle=throttle)
    with LiveServer(app) as server:
        yield server


@dataclass
class Patient:
    email: str
    full_name: str
    password: str = PASSWORD


@dataclass
class Portal:
    """A browser tab on the live portal, failing the test on any error in the page's scripts."""

    page: Page
    server: LiveServer
    app: FastAPI
    errors: list[str] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def register(self) -> Patient:
        patient = Patient(
            email=f"p-{secrets.token_hex(4)}@example.org",
            full_name=f"Patient {secrets.token_hex(3)}",
        )
        SENSITIVE.add(patient.email, patient.full_name, patient.password)
        self.page.goto("/register")
        self.page.get_by_label("Full name").fill(patient.full_name)
        self.page.get_by_label("E-mail", exact=True).fill(patient.email)
        self.page.get_by_label("Password").fill(patient.password)
        self.page.get_by_role("button", name="Create account").click()
        # Registration answers alike for new and known addresses: then the patient signs in.
        self.page.wait_for_url("**/login?registered=1")
        self.page.get_by_label("E-mail", exact=True).fill(patient.email)
        self.page.get_by_label("Password").fill(patient.password)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url("**/cases")
        return patient

    def open_spine_case(self) -> str:
        """Open a case through /cases/new with consent ticked; return its id."""
        self.page.goto("/cases/new")
        self.page.get_by_label("Subject").fill("Lesion in a thoracic vertebra")
        self.page.get_by_label("Body region").select_option("spine")
        self.page.get_by_label("Your questions for the specialist").fill(
            "Is this a typical vertebral hemangioma, and does it need treatment?"
        )
        self.page.get_by_label("I have read and accept this consent text").check()
        self.page.get_by_role("button", name="Open the case").click()
        self.page.wait_for_url("**/cases/*?done=opened")
        return self.page.url.split("?")[0].rsplit("/", 1)[1]

    def uploads(self) -> list[TusUpload]:
        """The server's own record of this test's resumable uploads."""
        with Session(self.app.state.engine) as session:
            begin_read_only(session)  # polling must not take SQLite's write lock
            return list(session.exec(select(TusUpload)).all())

    def upload_outcomes(self) -> dict[str, dict[str, Any]]:
        """Each upload's file name and what the server made of it, opened with the case key."""
        outcomes: dict[str, dict[str, Any]] = {}
        with bind_vault(Session(self.app.state.engine), self.app.state.vault) as session:
            for upload in session.exec(select(TusUpload)).all():
                result = tus.result_of(session=session, upload=upload)
                name = tus.filename(session=session, upload=upload)
                outcomes[name] = result.model_dump(mode="json") if result else {}
            session.commit()
        return outcomes

    def wait_for_offset(self, minimum: int, timeout: float = 30) -> int:
        """Wait until the server has stored at least ``minimum`` bytes of the one upload."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            uploads = self.uploads()
            if uploads and uploads[0].offset >= minimum:
                return uploads[0].offset
            self.page.wait_for_timeout(20)  # keeps Playwright's events flowing, unlike sleep
        raise AssertionError(f"the server never stored {minimum} bytes")

    def progress(self) -> float:
        """The overall progress bar, in per cent."""
        value: float = self.page.eval_on_selector("#overall-progress", "bar => bar.value")
        return value

    def record(self, request: Request) -> None:
        if "/api/uploads" in request.url:
            self.requests.append((request.method, request.url, request.headers))

    def sent(self, method: str) -> list[dict[str, str]]:
        return [headers for seen, _url, headers in self.requests if seen == method]


@pytest.fixture
def portal(browser: Browser, live: LiveServer, app: FastAPI) -> Iterator[Portal]:
    context = browser.new_context(base_url=live.url)
    context.set_default_timeout(30_000)
    page = context.new_page()
    portal = Portal(page=page, server=live, app=app)
    page.on("pageerror", lambda error: portal.errors.append(str(error)))
    page.on("request", portal.record)
    yield portal
    context.close()
    assert not portal.errors, f"errors in the page's scripts: {portal.errors}"


def write_cd(folder: Path, instances: list[bytes]) -> Path:
    """A hospital CD's layout: ``CD/DICOM/IM0001`` …, plus the clutter operating systems add."""
    cd = folder / "CD"
    (cd / "DICOM").mkdir(parents=True)
    for number, data in enumerate(instances, start=1):
        (cd / "DICOM" / f"IM{number:04d}").write_bytes(data)
    (cd / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (cd / "DICOM" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (cd / "EMPTY").write_bytes(b"")
    return cd


def big_ct(frames: int) -> bytes:
    """A multi-frame 512 x 512 16-bit CT instance (0.5 MiB a frame), made from CT_small.dcm."""
    dataset: Any = dcmread(samples.dicom_path("CT_small.dcm"))
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
    dataset.Rows = dataset.Columns = 512
    dataset.NumberOfFrames = frames
    dataset.PixelData = bytes(512 * 512 * 2 * frames)
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.fixture(scope="session")
def big_dicom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 40 MB: five chunks of 8 MiB, so a test can act between them."""
    path = tmp_path_factory.mktemp("big") / "CT-multiframe.dcm"
    path.write_bytes(big_ct(frames=80))
    return path
