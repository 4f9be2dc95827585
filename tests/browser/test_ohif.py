"""OHIF in real Chromium, served by the portal under ``/ohif/``: it boots for a signed-in
specialist under the viewer's own CSP with no script error, CSP violation or console error, not
one request leaves the portal's origin, and its web workers decode compressed frames.

The release is the one ``make test`` installs (``portal ohif install``); without it these tests
skip locally and fail in CI. Nothing here stands in for the case's DICOMweb service: a test
that opens a study uploads it (``upload``) and goes to ``links.study_url`` of it, so the viewer
reads it from the portal itself.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from sqlmodel import Session

from portal.cases.models import Case
from portal.ohif import urls
from portal.ohif.bundle import installed
from portal.settings import Settings
from tests.fixtures.app import Account, Accounts, make_settings, open_case, submit_case
from tests.fixtures.live import LiveServer
from tests.portal import samples
from tests.services import IN_CI, unavailable

try:
    from playwright.sync_api import Browser, ConsoleMessage, Locator, Request, expect
except ImportError:
    if IN_CI:
        raise
    pytest.skip("Playwright is not installed (pip install -e '.[dev]')", allow_module_level=True)

if TYPE_CHECKING:
    from fastapi.testclient import TestClient
    from playwright.sync_api import Page

    from storage.embedded import EmbeddedS3

REPO = Path(__file__).resolve().parents[2]
REPORT_CSP = """document.addEventListener("securitypolicyviolation", function (event) {
  console.error("CSP violation: " + event.violatedDirective + " " + event.blockedURI);
});"""
BOOT_TIMEOUT_MS = 90_000
DECODE_FIRST_FRAME = """async (url) => {
  const image = await window.cornerstone.imageLoader.loadAndCacheImage("wadouri:" + url);
  const pixels = image.getPixelData();
  let sum = 0;
  for (let i = 0; i < pixels.length; i++) sum += pixels[i];
  return {rows: image.rows, columns: image.columns, sum: sum};
}"""


@pytest.fixture(scope="session")
def ohif_root() -> Path:
    """The folder ``portal ohif install`` filled (``var/ohif`` of the checkout by default)."""
    defaults = Settings()
    root = defaults.ohif_root if defaults.ohif_root.is_absolute() else REPO / defaults.ohif_root
    release = installed(root=root, version=defaults.ohif_version, integrity=defaults.ohif_integrity)
    if release is None:
        unavailable(f"OHIF {defaults.ohif_version} is not installed in {root}: portal ohif install")
    return root


@pytest.fixture
def settings(tmp_path: Path, database_url: str, seaweed: EmbeddedS3, ohif_root: Path) -> Settings:
    """The suite's settings, with the installed viewer."""
    return make_settings(tmp_path, database_url, seaweed, ohif_dir=ohif_root)


@dataclass
class Viewer:
    """A browser context on the live portal that records every request (pages and workers
    alike), script error, CSP violation and console error."""

    page: Page
    origin: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def record(self, request: Request) -> None:
        self.requests.append(request.url)

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            self.errors.append(f"console {message.type}: {message.text} ({message.location})")

    def sign_in(self, account: Account, settings: Settings) -> None:
        """The session ``account`` signed in with (through the API), as the browser's cookie."""
        assert account.token
        self.page.context.add_cookies(
            [{"name": settings.cookie_name, "value": account.token, "url": self.origin}]
        )

    def open_shell(self, path: str) -> None:
        """Go to an OHIF address and wait until OHIF has rendered into its root element."""
        self.page.goto(path)
        expect(self.page.locator("#root > *").first).to_be_attached(timeout=BOOT_TIMEOUT_MS)

    def foreign_requests(self) -> list[str]:
        """Requests to anywhere but the portal (``data:`` and the page's own ``blob:`` URLs
        never leave the browser)."""
        return [url for url in self.requests if not self._stays_here(url)]

    def _stays_here(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme == "data":
            return True
        if parts.scheme == "blob":
            return url.startswith(f"blob:{self.origin}/")
        return f"{parts.scheme}://{parts.netloc}" == self.origin


@pytest.fixture
def viewer(browser: Browser, live: LiveServer) -> Iterator[Viewer]:
    context = browser.new_context(base_url=live.url)
    context.set_default_timeout(30_000)
    context.add_init_script(script=REPORT_CSP)  # init scripts are not subject to the CSP
    page = context.new_page()
    opened = Viewer(page=page, origin=live.url)
    context.on("request", opened.record)
    page.on("pageerror", lambda error: opened.errors.append(f"page error: {error}"))
    page.on("console", opened.console)
    yield opened
    context.close()


def upload(client: TestClient, owner: Account, case_id: str, *names: str) -> list[str]:
    """Upload pydicom sample files to the case through the API; their file ids."""
    response = client.post(
        f"/api/cases/{case_id}/files",
        files=[("files", (name, samples.dicom(name), "application/dicom")) for name in names],
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    assert not response.json()["rejected"], response.json()
    return [item["id"] for item in response.json()["accepted"]]


def test_ohif_boots_for_a_specialist_and_talks_only_to_the_portal(
    viewer: Viewer, accounts: Accounts, client: TestClient, settings: Settings
) -> None:
    case = open_case(client, accounts.patient())
    viewer.sign_in(accounts.specialist(), settings)

    viewer.open_shell(f"{urls.shell_base(uuid.UUID(case['id']))}/")

    # OHIF's router runs under the case's base: the bare base is its "no such view" page
    # (the portal's case page is the study list), rendered by OHIF itself.
    expect(viewer.page.get_by_text("We can't find the page you're looking for.")).to_be_visible()
    static = f"{viewer.origin}{urls.static_base(settings.ohif_version)}"
    loaded = [url for url in viewer.requests if url.startswith(static)]
    assert any("app.bundle." in url for url in loaded)
    assert any(url.endswith(".woff2") for url in loaded), "the font comes from the release"
    assert not viewer.foreign_requests(), viewer.foreign_requests()
    assert not viewer.errors, viewer.errors


@pytest.mark.parametrize(
    ("name", "webassembly"),
    [
        ("MR_small_jpeg_ls_lossless.dcm", True),  # JPEG-LS: CharLS
        ("emri_small_jpeg_2k_lossless.dcm", True),  # JPEG 2000: OpenJPEG
        ("JPEG-LL.dcm", False),  # JPEG lossless, process 14: a JavaScript decoder
        ("SC_rgb_jpeg_dcmtk.dcm", False),  # JPEG baseline: the browser's decoder, data: URLs
    ],
)
def test_ohif_workers_decode_compressed_frames_under_the_viewer_csp(
    viewer: Viewer,
    accounts: Accounts,
    client: TestClient,
    settings: Settings,
    name: str,
    webassembly: bool,
) -> None:
    patient = accounts.patient()
    case = open_case(client, patient)
    (file_id,) = upload(client, patient, case["id"], name)
    viewer.sign_in(patient, settings)
    viewer.open_shell(f"{urls.shell_base(uuid.UUID(case['id']))}/")

    # OHIF's own image loader, fed the original file: its decode worker runs the codec.
    decoded: dict[str, Any] = viewer.page.evaluate(
        DECODE_FIRST_FRAME, f"/api/cases/{case['id']}/files/{file_id}/content"
    )

    expected: Any = dcmread(samples.dicom_path(name)).pixel_array
    first_frame = expected[0] if expected.ndim == 3 and expected.shape[-1] != 3 else expected
    assert (decoded["rows"], decoded["columns"]) == first_frame.shape[:2]
    assert decoded["sum"] == int(first_frame.sum())
    # The codec's WebAssembly is fetched by the worker: its requests are recorded too.
    assert any(url.endswith(".wasm") for url in viewer.requests) == webassembly
    assert not viewer.foreign_requests(), viewer.foreign_requests()
    assert not viewer.errors, viewer.errors


def test_a_specialist_opens_the_case_study_in_ohif_and_switches_to_mpr(
    viewer: Viewer,
    accounts: Accounts,
    client: TestClient,
    settings: Settings,
    app: Any,
) -> None:
    patient, specialist = accounts.patient(), accounts.specialist()
    case = open_case(client, patient)
    volume = samples.ct_volume()
    sent = client.post(
        f"/api/cases/{case['id']}/files",
        files=[
            ("files", (f"ct{i}.dcm", data, "application/dicom")) for i, data in enumerate(volume)
        ],
        headers=patient.headers,
    )
    assert len(sent.json()["accepted"]) == len(volume), sent.text
    submit_case(client, patient, case["id"])  # a draft's images are its patient's alone
    with Session(app.state.engine) as db:
        stored = db.get(Case, uuid.UUID(case["id"]))
        assert stored is not None
        stored.assigned_specialist_id = specialist.user_id
        db.add(stored)
        db.commit()
    study_uid = str(dcmread(io.BytesIO(volume[0])).StudyInstanceUID)
    viewer.sign_in(specialist, settings)

    viewer.open_shell(urls.viewer_url(uuid.UUID(case["id"]), study_uid))

    # The stack opens at one end of the volume, beside the ball: water and the denser strip.
    assert _strip(drawn(viewer.page.locator('[data-viewportid="default"] canvas').first))
    viewer.page.locator('[data-cy="Layout"]').click()
    viewer.page.get_by_text("MPR", exact=True).click()
    views = {
        name: drawn(viewer.page.locator(f'[data-viewportid="mpr-{name}"] canvas').first)
        for name in ("axial", "sagittal", "coronal")
    }
    # The phantom has a denser strip along one side (x > 3/4 of the width): the coronal and
    # axial views cut across it, the sagittal view through the middle does not.
    assert all(view.max() > 200 for view in views.values())
    assert _strip(views["coronal"]) and _strip(views["axial"]) and not _strip(views["sagittal"])
    ohif_reads = [url for url in viewer.requests if "/dicomweb/" in url]
    assert any("/frames/" in url for url in ohif_reads) and any(
        "/series" in url for url in ohif_reads
    )
    assert not viewer.foreign_requests(), viewer.foreign_requests()
    assert not viewer.errors, viewer.errors


def drawn(canvas: Locator, timeout: float = 60.0) -> np.ndarray:
    """The canvas's pixels (grey) once an image is drawn on it and has stopped changing (the
    volume fills in as frames arrive): not one flat colour, the same in two looks in a row."""
    deadline = time.monotonic() + timeout
    previous = None
    while True:
        grey = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("L"))
        rows, columns = grey.shape
        # The middle, away from OHIF's text, orientation letters and slider over the canvas.
        grey = grey[rows // 5 : rows * 4 // 5, columns // 12 : columns * 11 // 12]
        settled = previous is not None and np.array_equal(grey, previous)
        if (settled and grey.std() > 20) or time.monotonic() > deadline:
            assert grey.std() > 20, "nothing was drawn in the viewport"
            return grey
        previous = grey
        time.sleep(1.0)


def _strip(view: np.ndarray) -> bool:
    """Whether the 60 HU strip shows: columns of the image (not the black around it) mostly of
    a grey between water's (0 HU, about 102 in the window 40/400) and the ball's white."""
    image = view >= 60
    band = image & (view > 122) & (view < 200)
    share = band.sum(axis=0) / np.maximum(image.sum(axis=0), 1)
    return bool((share > 0.6).any())
