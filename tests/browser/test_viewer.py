"""The built-in viewer in Chromium: a small frame fills its frame, zooms, pans and fits again;
study dates read as dates."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from playwright.sync_api import expect

from tests.browser.conftest import Portal
from tests.portal import samples


def lit_area(png: bytes) -> int:
    """Pixels of the screenshot that are not background black."""
    return int((np.asarray(Image.open(io.BytesIO(png)).convert("L")) > 8).sum())


def test_a_small_image_fills_the_viewer_and_zooms_pans_and_fits(portal: Portal) -> None:
    page = portal.page
    portal.register()
    case_id = portal.open_spine_case()
    page.set_input_files(
        "#pick-files",
        files=[
            {
                "name": "ct.dcm",
                "mimeType": "application/dicom",
                "buffer": samples.dicom("CT_small.dcm"),  # 128 x 128 pixels, 19 Jan 2004
            }
        ],
    )
    expect(page.get_by_text("Accepted: DICOM image")).to_be_visible(timeout=30_000)
    page.goto(f"/cases/{case_id}")
    expect(page.get_by_text("19 Jan 2004", exact=False).first).to_be_visible()
    page.locator(".series-link").first.click()
    image = page.locator("#viewer-image")
    expect(page.locator("#viewer-position")).to_have_text("Image 1 of 1")
    page.wait_for_function("() => document.getElementById('viewer-image').naturalWidth > 0")

    stage = page.locator("#viewer-stage").bounding_box()
    assert stage is not None and stage["height"] > 300
    fitted = lit_area(page.locator("#viewer-stage").screenshot())
    assert fitted > 4 * 128 * 128, "a 128-pixel frame is drawn larger than its pixels"

    page.locator("#viewer").focus()
    page.keyboard.press("+")
    page.keyboard.press("+")
    expect(page.locator("#viewer-zoom")).to_have_text("156%")
    zoomed = lit_area(page.locator("#viewer-stage").screenshot())
    assert zoomed > fitted * 1.3

    window = page.locator("#viewer-window").text_content()
    page.get_by_role("button", name="Pan").click()
    box = page.locator("#viewer-stage").bounding_box()
    assert box is not None
    middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*middle)
    page.mouse.down()
    page.mouse.move(middle[0] + 120, middle[1] + 40, steps=5)
    page.mouse.up()
    assert "translate(120px, 40px)" in (image.get_attribute("style") or "")
    assert page.locator("#viewer-window").text_content() == window  # the window stays

    page.get_by_role("button", name="Fit").click()
    expect(page.locator("#viewer-zoom")).to_have_text("100%")
    assert "translate(0px, 0px) scale(1)" in (image.get_attribute("style") or "")
