"""The whole journey in real Chromium, three people in three browser contexts: a patient uploads
a CT series and submits, the matched specialist reads it in the viewer, asks a question, writes
and signs the opinion, the patient reads it and downloads the PDF, and a coordinator watches
the case move on the dashboard. (A dropped connection during an upload is covered in
``test_upload.py``.)"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from fastapi import FastAPI
from pydicom import dcmread
from pydicom.uid import generate_uid
from pypdf import PdfReader

from portal.accounts.models import Role
from tests.browser.conftest import Portal, write_cd
from tests.fixtures.app import Account, Accounts
from tests.fixtures.live import LiveServer
from tests.portal import samples
from tests.services import IN_CI

try:
    from playwright.sync_api import Browser, ConsoleMessage, expect
except ImportError:
    if IN_CI:
        raise
    pytest.skip("Playwright is not installed (pip install -e '.[dev]')", allow_module_level=True)

if TYPE_CHECKING:
    from playwright.sync_api import Page

INSTANCES = 100
QUESTION = "Have you had any back surgery or a biopsy of this vertebra before?"
ANSWER = "No surgery and no biopsy; only physiotherapy last spring."
IMPRESSION = "Typical vertebral hemangioma of T11 without aggressive features."
REPORT_CSP = """document.addEventListener("securitypolicyviolation", function (event) {
  console.error("CSP violation: " + event.violatedDirective + " " + event.blockedURI);
});"""


def distinct_ct_series(count: int) -> list[bytes]:
    """``count`` CT instances of one spine series whose pixels differ from slice to slice
    (``samples.ct_series`` repeats one image, so scrolling would show nothing change)."""
    template: Any = dcmread(samples.dicom_path("CT_small.dcm"))
    pixels = template.pixel_array
    study_uid, series_uid = generate_uid(), generate_uid()
    instances = []
    for number in range(1, count + 1):
        template.StudyInstanceUID, template.SeriesInstanceUID = study_uid, series_uid
        template.SOPInstanceUID = generate_uid()
        template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
        template.InstanceNumber = number
        template.ImagePositionPatient = [0.0, 0.0, float(number)]
        template.BodyPartExamined, template.Modality = "SPINE", "CT"
        template.PixelData = np.roll(pixels, number * 5, axis=(0, 1)).astype(pixels.dtype).tobytes()
        out = io.BytesIO()
        template.save_as(out, enforce_file_format=True)
        instances.append(out.getvalue())
    return instances


class Tabs:
    """Browser contexts on the live portal; any script error, CSP violation or console error
    in any of them fails the test."""

    def __init__(self, browser: Browser, live: LiveServer, app: FastAPI) -> None:
        self.browser, self.live, self.app = browser, live, app
        self.opened: list[Portal] = []

    def open(self) -> Portal:
        context = self.browser.new_context(base_url=self.live.url, accept_downloads=True)
        context.set_default_timeout(30_000)
        context.add_init_script(script=REPORT_CSP)  # init scripts are not subject to the CSP
        page = context.new_page()
        portal = Portal(page=page, server=self.live, app=self.app)
        page.on("pageerror", lambda error: portal.errors.append(str(error)))
        page.on("console", lambda message: _console(portal, message))
        self.opened.append(portal)
        return portal

    def close(self) -> None:
        for portal in self.opened:
            portal.page.context.close()


def _console(portal: Portal, message: ConsoleMessage) -> None:
    # CSP refusals ("Refused to execute inline script …") and failed loads are console errors.
    # The portal has no favicon: Chromium's own request for it is not the page's doing.
    if message.location.get("url", "").endswith("/favicon.ico"):
        return
    if message.type == "error" or "Content Security Policy" in message.text:
        portal.errors.append(f"console {message.type}: {message.text} ({message.location})")


@pytest.fixture
def tabs(browser: Browser, live: LiveServer, app: FastAPI) -> Iterator[Tabs]:
    opened = Tabs(browser, live, app)
    yield opened
    opened.close()
    errors = {id(portal): portal.errors for portal in opened.opened if portal.errors}
    assert not errors, f"errors in the pages: {list(errors.values())}"


def sign_in(portal: Portal, account: Account, *, then: str) -> None:
    page = portal.page
    page.goto(f"/login?next={then}")
    page.get_by_label("E-mail", exact=True).fill(account.email)
    page.get_by_label("Password").fill(account.password)
    page.get_by_label("One-time code").fill(account.next_otp())
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{then}")


def viewer_pixels(page: Page) -> bytes:
    """A screenshot of the frame shown, taken once the image element has loaded its source."""
    page.wait_for_function(
        "() => { const img = document.getElementById('viewer-image');"
        " return img.src !== '' && img.complete && img.naturalWidth > 0; }"
    )
    return page.locator("#viewer-image").screenshot()


def next_frame(page: Page, action: Any) -> bytes:
    """Do ``action``, wait until the viewer shows a different source, fully loaded; its pixels."""
    before = page.evaluate("() => document.getElementById('viewer-image').src")
    action()
    page.wait_for_function(
        "(before) => { const img = document.getElementById('viewer-image');"
        " return img.src !== before && img.complete && img.naturalWidth > 0; }",
        arg=before,
    )
    return page.locator("#viewer-image").screenshot()


def dashboard_row(coordinator: Portal, case_id: str) -> Any:
    coordinator.page.goto("/cases")
    return coordinator.page.locator("#case-table tbody tr").filter(
        has=coordinator.page.locator(f"a[href='/cases/{case_id}']")
    )


def test_patient_specialist_and_coordinator_from_upload_to_signed_opinion(
    live: LiveServer, accounts: Accounts, tabs: Tabs, tmp_path: Path
) -> None:
    started = time.monotonic()
    # Made first: three one-time codes are needed (API sign-in, page sign-in, signing), one per
    # 30 s step, so the third one must not wait long.
    specialist = accounts.specialist(
        specialties=["spine_surgery"],
        body_regions=["spine"],
        modalities=["CT", "MR"],
        languages=["en"],
        credentials="Spine surgeon, licence DE-0042",
    )
    coordinator = accounts.staff(Role.coordinator)
    cd = write_cd(tmp_path, distinct_ct_series(INSTANCES))

    # The patient: register, open a spine case with consent, upload a CD folder, submit.
    patient_tab = tabs.open()
    patient_page = patient_tab.page
    patient_tab.register()
    case_id = patient_tab.open_spine_case()
    patient_page.set_input_files("#pick-folder", str(cd))
    rows = patient_page.locator("#upload-list > li")
    expect(rows.and_(patient_page.locator("[data-state=accepted]"))).to_have_count(
        INSTANCES, timeout=60_000
    )
    expect(patient_page.locator("#upload-status")).to_have_text(
        f"Done: {INSTANCES} files accepted."
    )
    assert patient_tab.progress() == 100
    expect(patient_page.locator("#uploader")).to_have_attribute("data-refreshed", "true")
    expect(patient_page.locator("#studies")).to_contain_text(f"{INSTANCES} images")
    patient_page.locator("#submit-case").click()
    patient_page.wait_for_url(f"**/cases/{case_id}?done=*")
    expect(patient_page.locator("#case-status")).to_have_attribute("data-status", "assigned")

    # The coordinator sees it on the dashboard: offered to the matched specialist.
    coordinator_tab = tabs.open()
    sign_in(coordinator_tab, coordinator, then="/cases")
    row = dashboard_row(coordinator_tab, case_id)
    expect(row).to_have_attribute("data-status", "assigned")
    expect(row).to_contain_text(specialist.full_name)

    # The specialist: the worklist, accept, the viewer.
    specialist_tab = tabs.open()
    page = specialist_tab.page
    sign_in(specialist_tab, specialist, then="/cases")
    page.locator(f"a[href='/cases/{case_id}']").click()
    page.wait_for_url(f"**/cases/{case_id}")
    page.locator("#accept-case").click()
    page.wait_for_url(f"**/cases/{case_id}?done=accepted")
    expect(page.locator("#case-status")).to_have_attribute("data-status", "in_review")
    page.locator("#studies a.series-link").first.click()
    page.wait_for_url(f"**/cases/{case_id}/viewer?series=*")
    expect(page.locator("#viewer-position")).to_have_text(f"Image 51 of {INSTANCES}")
    first = viewer_pixels(page)
    viewer = page.locator("#viewer")
    viewer.hover()
    wheeled = next_frame(page, lambda: page.mouse.wheel(0, 120))
    expect(page.locator("#viewer-position")).to_have_text(f"Image 52 of {INSTANCES}")
    assert wheeled != first, "the mouse wheel showed the same pixels"
    arrowed = next_frame(page, lambda: page.keyboard.press("ArrowDown"))
    expect(page.locator("#viewer-position")).to_have_text(f"Image 53 of {INSTANCES}")
    assert arrowed not in (first, wheeled), "ArrowDown showed the same pixels"
    bone = next_frame(page, lambda: page.locator("[data-preset=bone]").click())
    expect(page.locator("[data-preset=bone]")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#viewer-window")).to_have_text("window: Bone")
    assert "preset=bone" in (page.locator("#viewer-image").get_attribute("src") or "")
    assert bone != arrowed, "the bone window did not change the pixels"

    # The specialist asks the patient a question.
    page.goto(f"/cases/{case_id}")
    page.get_by_label("Ask the patient").fill(QUESTION)
    page.locator("#ask-patient").click()
    page.wait_for_url(f"**/cases/{case_id}?done=asked")
    expect(page.locator("#case-status")).to_have_attribute("data-status", "info_requested")

    # The patient sees it and answers.
    patient_page.goto(f"/cases/{case_id}")
    asked = patient_page.locator("#questions-to-answer")
    expect(asked).to_contain_text(QUESTION)
    asked.get_by_label("Your answer").fill(ANSWER)
    asked.get_by_role("button", name="Send the answer").click()
    patient_page.wait_for_url(f"**/cases/{case_id}?done=answered")
    expect(patient_page.locator("#conversation")).to_contain_text(ANSWER)

    # The specialist writes the opinion (autosaved), then signs it.
    page.goto(f"/cases/{case_id}")
    expect(page.locator("#conversation")).to_contain_text(ANSWER)
    expect(page.locator("#case-status")).to_have_attribute("data-status", "in_review")
    page.locator("#edit-opinion").click()
    page.wait_for_url(f"**/cases/{case_id}/opinion/edit")
    form = page.locator("#opinion-form")
    form.get_by_label("Summary").fill("CT of the thoracolumbar spine, 100 axial images.")
    form.get_by_label("Imaging findings").fill(
        "Coarse vertical trabeculae in the T11 body (polka-dot sign); cortex intact."
    )
    form.get_by_label("Impression / diagnosis").fill(IMPRESSION)
    form.get_by_label("Answers to the patient's questions").fill(
        "It is typical and needs no treatment now."
    )
    form.get_by_label("Treatment options").fill("No treatment; follow-up only if pain changes.")
    form.get_by_label("Urgency").select_option("routine")
    form.get_by_label("Further tests").fill("MRI in 12 months.")
    form.get_by_label("Limitations").fill("No prior images to compare with.")
    expect(page.locator("#opinion-preview")).to_contain_text(IMPRESSION)
    expect(page.locator("#autosave-status")).to_contain_text("Draft saved", timeout=15_000)
    sign = page.locator("#sign")
    sign.get_by_label("Password").fill(specialist.password)
    sign.get_by_label("One-time code").fill(specialist.next_otp())
    page.locator("#sign-opinion").click()
    page.wait_for_url(f"**/cases/{case_id}?done=signed")
    expect(page.locator("#case-status")).to_have_attribute("data-status", "opinion_delivered")

    # The patient reads the opinion and downloads the PDF.
    patient_page.goto(f"/cases/{case_id}")
    expect(patient_page.locator("#opinion-impression")).to_have_text(IMPRESSION)
    expect(patient_page.locator("#opinion")).to_contain_text("Urgency: routine")
    with patient_page.expect_download() as download:
        patient_page.locator("#download-pdf").click()
    path = download.value.path()
    assert download.value.suggested_filename.endswith(".pdf")
    text = " ".join((p.extract_text() or "") for p in PdfReader(path).pages)
    assert IMPRESSION in " ".join(text.split()), text[:2000]

    # The coordinator sees the case delivered.
    row = dashboard_row(coordinator_tab, case_id)
    expect(row).to_have_attribute("data-status", "opinion_delivered")
    expect(row).to_contain_text(specialist.full_name)
    print(f"journey took {time.monotonic() - started:.1f} s")
