"""The case page and the upload completion job: a CD's ZIP shows its import progress, and a
worker killed mid-import does not stop the page from showing the result once another worker
has finished the job."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI

from portal.intake.upload_jobs import HANDLERS
from portal.jobs import service as jobs
from portal.settings import Settings
from tests.browser.conftest import MIB, Portal
from tests.fixtures.uploads import kill_worker_after
from tests.portal import samples
from tests.services import IN_CI

try:
    from playwright.sync_api import expect
except ImportError:
    if IN_CI:
        raise
    pytest.skip("Playwright is not installed (pip install -e '.[dev]')", allow_module_level=True)

pytestmark = pytest.mark.slow
SLICES = 24  # 512 x 512 CT slices: a 12 MB ZIP, more than the page's 8 MiB chunk


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The app runs no workers: the test decides when a worker runs and when it dies."""
    settings.jobs_enabled = False
    return settings


def test_a_cd_zip_shows_its_import_progress_and_its_result_after_a_worker_crash(
    portal: Portal, app: FastAPI, settings: Settings, tmp_path: Path
):
    page = portal.page
    portal.register()
    portal.open_spine_case()
    cd = tmp_path / "hospital-cd.zip"
    cd.write_bytes(samples.ct_zip(SLICES))
    assert cd.stat().st_size > 8 * MIB

    page.set_input_files("#pick-files", str(cd))
    row = page.locator("#upload-list > li").filter(has_text="hospital-cd.zip")
    state = row.locator(".upload-state")
    expect(state).to_have_text("Uploaded; the server is checking it…")
    (upload,) = portal.uploads()
    assert upload.status == "assembling" and upload.offset == upload.length
    assert len(portal.sent("PATCH")) == 2  # tus: the last PATCH answered before the import

    imported = kill_worker_after(app.state.engine, settings, upload.id, entries=6)
    assert 6 <= imported < SLICES
    expect(state).to_have_text(f"Uploaded; importing its files: {imported} of {SLICES}…")

    assert jobs.run_pending(
        engine=app.state.engine, vault=app.state.vault, settings=settings, handlers=HANDLERS
    )
    expect(row).to_have_attribute("data-state", "accepted")
    expect(state).to_have_text(
        f"{SLICES} files accepted. The archive has no DICOMDIR to check it against."
    )
    expect(page.locator("#files")).to_have_attribute("data-dicom-files", str(SLICES))
