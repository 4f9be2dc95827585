"""Uploads from the case page in real Chromium: a CD folder, a dropped connection, pause and
resume across a reload, and files the server refuses (with its reasons shown)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.browser.conftest import MIB, Portal, Throttle, write_cd
from tests.portal import samples
from tests.services import IN_CI

try:
    from playwright.sync_api import Response, expect
except ImportError:
    if IN_CI:
        raise
    pytest.skip("Playwright is not installed (pip install -e '.[dev]')", allow_module_level=True)

CHUNK = 8 * MIB  # the page's data-chunk-bytes


def test_a_cd_folder_of_100_images_uploads_and_shows_in_the_file_list(
    portal: Portal, tmp_path: Path
):
    page = portal.page
    portal.register()
    portal.open_spine_case()
    cd = write_cd(tmp_path, samples.ct_series(100))
    expect(page.locator(".progress-overall")).to_be_hidden()

    started = time.monotonic()
    page.set_input_files("#pick-folder", str(cd))
    rows = page.locator("#upload-list > li")
    expect(rows.and_(page.locator("[data-state=accepted]"))).to_have_count(100, timeout=60_000)
    elapsed = time.monotonic() - started
    expect(rows).to_have_count(100)  # .DS_Store, Thumbs.db and the empty file stay behind
    expect(rows.first.locator(".upload-name")).to_have_text("CD/DICOM/IM0001")
    expect(rows.first.locator(".upload-state")).to_have_text("Accepted: DICOM image")
    expect(page.locator("#upload-status")).to_have_text("Done: 100 files accepted.")
    assert portal.progress() == 100
    expect(page.locator("#overall-label")).to_contain_text("100 of 100 files done")
    assert len(portal.sent("POST")) == 100 and not portal.sent("PATCH")  # one upload request a file
    assert elapsed < 40, f"100 small files took {elapsed:.1f} s"

    expect(page.locator("#uploader")).to_have_attribute("data-refreshed", "true")
    expect(page.locator("#files")).to_have_attribute("data-dicom-files", "100")  # updated in place
    expect(page.locator("#studies")).to_contain_text("100 images")
    page.reload()
    expect(page.locator("#files")).to_have_attribute("data-dicom-files", "100")
    expect(page.locator("#upload-list > li")).to_have_count(0)


def test_a_dropped_connection_resumes_from_the_servers_offset(
    portal: Portal, big_dicom: Path, throttle: Throttle
):
    page = portal.page
    portal.register()
    portal.open_spine_case()
    heads: list[int] = []
    page.on("response", lambda response: heads.extend(_head_offset(response)))
    throttle.bytes_per_second = 16 * MIB

    page.set_input_files("#pick-files", str(big_dicom))
    row = page.locator("#upload-list > li")
    portal.wait_for_offset(CHUNK)  # one 8 MiB chunk is stored, the next one is on its way
    page.context.set_offline(True)
    expect(page.locator("#upload-status")).to_contain_text("Waiting for the connection")
    expect(row).to_have_attribute("data-state", "waiting")
    (upload,) = portal.uploads()
    assert 0 < upload.offset < upload.length  # what arrived is kept on the server
    patches_before = len(portal.sent("PATCH"))

    page.context.set_offline(False)
    expect(row).to_have_attribute("data-state", "accepted", timeout=60_000)
    expect(row.locator(".upload-state")).to_have_text("Accepted: DICOM image")
    expect(page.locator("#upload-status")).to_have_text("Done: 1 file accepted.")
    assert portal.progress() == 100

    (upload,) = portal.uploads()  # the same upload all along: never created again
    assert upload.completed_at is not None
    assert upload.offset == upload.length == big_dicom.stat().st_size
    offsets = [int(headers["upload-offset"]) for headers in portal.sent("PATCH")]
    assert offsets.count(0) == 1 and offsets == sorted(offsets), offsets
    assert heads and heads[-1] > 0  # after the drop it asked the server where to go on
    assert offsets[patches_before] == heads[-1], (offsets, heads)
    checksums = [headers.get("upload-checksum", "") for headers in portal.sent("PATCH")]
    assert all(checksum.startswith("sha256 ") for checksum in checksums)


def test_pause_resume_and_a_reload_continue_where_the_upload_stopped(
    portal: Portal, big_dicom: Path, throttle: Throttle
):
    page = portal.page
    portal.register()
    portal.open_spine_case()
    heads: list[int] = []
    page.on("response", lambda response: heads.extend(_head_offset(response)))
    throttle.bytes_per_second = 16 * MIB
    pause, resume = page.locator("#pause-uploads"), page.locator("#resume-uploads")
    row = page.locator("#upload-list > li")

    page.set_input_files("#pick-files", str(big_dicom))
    portal.wait_for_offset(CHUNK)
    pause.click()
    expect(row).to_have_attribute("data-state", "paused")
    expect(page.locator("#upload-status")).to_contain_text("Paused")
    expect(pause).to_be_disabled()
    expect(resume).to_be_enabled()
    page.wait_for_timeout(200)  # let the aborted request settle on the server
    seen, offset = len(portal.requests), portal.uploads()[0].offset
    page.wait_for_timeout(800)
    assert len(portal.requests) == seen, "requests were sent while paused"
    assert portal.uploads()[0].offset == offset > 0

    resume.click()
    expect(row).to_have_attribute("data-state", "uploading")
    portal.wait_for_offset(offset + CHUNK)
    pause.click()
    expect(row).to_have_attribute("data-state", "paused")

    page.reload()  # the page forgets everything but the fingerprint in localStorage
    stored: list[list[str]] = page.evaluate("() => Object.entries(localStorage)")
    assert len(stored) == 1, stored
    key, value = stored[0]
    upload = portal.uploads()[0]
    assert key.startswith("portal.upload.") and json.loads(value)["url"].endswith(str(upload.id))
    assert big_dicom.name not in key + value  # no file name in the browser's storage

    portal.requests.clear()
    page.set_input_files("#pick-files", str(big_dicom))  # the patient chooses the file again
    expect(row).to_have_attribute("data-state", "accepted", timeout=60_000)
    methods = [method for method, _url, _headers in portal.requests]
    assert methods[0] == "HEAD" and "POST" not in methods, methods
    offsets = [int(headers["upload-offset"]) for headers in portal.sent("PATCH")]
    assert offsets[0] == heads[-1] > 0, (offsets, heads)
    assert page.evaluate("() => localStorage.length") == 0  # forgotten once complete
    (upload,) = portal.uploads()
    assert upload.completed_at is not None and upload.offset == big_dicom.stat().st_size


def test_files_the_server_refuses_show_its_reasons(portal: Portal, tmp_path: Path):
    page = portal.page
    portal.register()
    portal.open_spine_case()
    folder = samples.dicomdir_folder()
    missing = "98892003/MR700/4648"
    cd_folders = {"77654033", "98892001", "98892003", "DICOMDIR"}
    extras = {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and path.relative_to(folder).parts[0] not in cd_folders
    }
    files = {
        "notes.txt": b"Blood pressure 120/80, no allergies.\n",
        "truncated.dcm": samples.dicom("CT_small.dcm")[:3000],
        "hospital-cd.zip": samples.zip_folder(folder, skip=extras | {missing}),
        "empty.dcm": b"",
        ".DS_Store": b"\0\0\0\1Bud1",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)

    page.set_input_files("#pick-files", [str(tmp_path / name) for name in files])
    rows = page.locator("#upload-list > li")
    expect(page.locator("#uploader")).to_have_attribute("data-state", "done", timeout=30_000)
    expect(rows).to_have_count(3)
    reasons = _server_reasons(portal)
    for name in ("notes.txt", "truncated.dcm"):
        row = rows.filter(has_text=name)
        expect(row).to_have_attribute("data-state", "rejected")
        expect(row.locator(".upload-state")).to_have_text(f"Not accepted: {reasons[name]}")
    archive = rows.filter(has_text="hospital-cd.zip")
    expect(archive).to_have_attribute("data-state", "accepted")
    expect(archive.locator(".upload-state")).to_have_text(
        f"30 files accepted. 30 of 31 files listed in the DICOMDIR arrived. Missing: {missing}."
    )
    expect(page.locator("#upload-status")).to_have_text(
        "Done: 1 file accepted, 2 not accepted (the reasons are shown with each file)."
    )
    expect(page.locator("#files")).to_have_attribute("data-dicom-files", "30")


def _head_offset(response: Response) -> list[int]:
    if response.request.method == "HEAD" and "/api/uploads/" in response.url:
        return [int(response.headers["upload-offset"])]
    return []


def _server_reasons(portal: Portal) -> dict[str, str]:
    """What the server itself said about each refused file (GET /api/uploads/{id})."""
    reasons: dict[str, str] = {}
    for name, result in portal.upload_outcomes().items():
        for rejected in result.get("rejected", []):
            reasons[name] = rejected["reason"]
    return reasons
