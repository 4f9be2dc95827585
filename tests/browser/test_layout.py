"""The pages fit a phone screen: nothing runs off the side at 390 px."""

from __future__ import annotations

from tests.browser.conftest import Portal

PHONE = {"width": 390, "height": 844}


def overflow(portal: Portal) -> int:
    """How many CSS pixels the page is wider than the screen."""
    width: int = portal.page.evaluate(
        "() => document.documentElement.scrollWidth - window.innerWidth"
    )
    return width


def test_patient_pages_fit_a_phone(portal: Portal):
    portal.page.set_viewport_size(PHONE)
    portal.page.goto("/login")
    assert overflow(portal) <= 0
    portal.register()
    assert overflow(portal) <= 0, "case list"
    case_id = portal.open_spine_case()
    assert overflow(portal) <= 0, "case page"
    portal.page.goto("/cases/new")
    assert overflow(portal) <= 0, "new case form"
    portal.page.goto(f"/cases/{case_id}/viewer")
    assert overflow(portal) <= 0, "viewer"
