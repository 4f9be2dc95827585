"""The opinion editor in Chromium: options ticked from the treatment guide are autosaved with
the draft, and unticking them unlinks them."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from portal.audit.service import SYSTEM
from reviewers.treatment import seed
from tests.browser.conftest import Portal
from tests.fixtures.app import Accounts
from tests.reviewers.conftest import ready_case, submit
from tests.services import IN_CI

try:
    from playwright.sync_api import expect
except ImportError:
    if IN_CI:
        raise
    pytest.skip("Playwright is not installed (pip install -e '.[dev]')", allow_module_level=True)

from tests.browser.test_journey import sign_in


def linked(client: TestClient, headers: dict[str, str], case_id: str) -> Any:
    opinion = client.get(f"/api/cases/{case_id}/opinion", headers=headers)
    assert opinion.status_code == 200, opinion.text
    return opinion.json()["content"]["recommendations"]["guide_options"]


def test_ticked_guide_options_are_autosaved_with_the_draft(
    portal: Portal, client: TestClient, accounts: Accounts, db: Session
) -> None:
    seed.load_seed(session=db, ctx=SYSTEM)
    specialist = accounts.specialist(
        specialties=["spine_surgery"], body_regions=["spine"], modalities=["CT"], languages=["en"]
    )
    patient = accounts.patient()
    case_id = ready_case(client, patient)["id"]
    assert submit(client, patient, case_id)["status"] == "assigned"
    assert client.post(f"/api/cases/{case_id}/accept", headers=specialist.headers).is_success

    sign_in(portal, specialist, then=f"/cases/{case_id}/opinion/edit")
    page = portal.page
    picker = page.locator("#guide-options")
    expect(picker).to_contain_text("Spinal (vertebral) hemangioma")
    picker.get_by_label("Embolization").check()
    picker.get_by_label("Vertebroplasty").check()
    status = page.locator("#autosave-status")
    expect(status).to_contain_text("Draft saved", timeout=15_000)
    assert linked(client, specialist.headers, case_id) == ["vertebroplasty", "embolization"]

    picker.get_by_label("Embolization").uncheck()
    expect(status).to_contain_text("Unsaved changes")
    expect(status).to_contain_text("Draft saved", timeout=15_000)
    assert linked(client, specialist.headers, case_id) == ["vertebroplasty"]
    page.reload()
    expect(page.locator("#guide-options").get_by_label("Vertebroplasty")).to_be_checked()
    expect(page.locator("#guide-options").get_by_label("Embolization")).not_to_be_checked()
