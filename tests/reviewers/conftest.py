"""A review team and cases ready for it, made through the real API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from portal.accounts.models import Role
from portal.cases.consent import CURRENT_VERSION
from tests.fixtures.app import Account, Accounts, open_case
from tests.portal import samples


@dataclass
class Team:
    coordinator: Account
    spine_ru: Account
    """Spine surgeon reading CT and MR, speaks Russian: the reader for a Russian spine case."""
    cardiology_ru: Account
    spine_en: Account
    """Spine surgeon, English only."""


@pytest.fixture
def team(accounts: Accounts) -> Team:
    return Team(
        coordinator=accounts.staff(Role.coordinator),
        spine_ru=accounts.specialist(
            specialties=["spine_surgery"],
            body_regions=["spine"],
            modalities=["CT", "MR"],
            languages=["ru", "en"],
            credentials="Spine surgeon, licence RU-77-0001",
        ),
        cardiology_ru=accounts.specialist(
            specialties=["cardiology"],
            body_regions=["heart", "chest"],
            modalities=["CT", "MR"],
            languages=["ru"],
        ),
        spine_en=accounts.specialist(
            specialties=["spine_surgery"],
            body_regions=["spine"],
            modalities=["CT", "MR"],
            languages=["en"],
        ),
    )


def upload(client: TestClient, who: Account, case_id: str, *files: tuple[str, bytes]) -> Any:
    response = client.post(
        f"/api/cases/{case_id}/files",
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
        headers=who.headers,
    )
    assert response.status_code == 200, response.text
    assert not response.json()["rejected"], response.json()
    return response.json()


def ready_case(
    client: TestClient, patient: Account, *, series: int = 2, **overrides: Any
) -> dict[str, Any]:
    """A draft case with consent given and a CT series uploaded, not yet submitted."""
    case = open_case(client, patient, **overrides)
    files = [(f"ct{n}.dcm", data) for n, data in enumerate(samples.ct_series(series))]
    upload(client, patient, case["id"], *files)
    consent = client.post(
        f"/api/cases/{case['id']}/consent",
        json={"accepted": True, "version": CURRENT_VERSION},
        headers=patient.headers,
    )
    assert consent.status_code == 201, consent.text
    return case


def submit(client: TestClient, patient: Account, case_id: str) -> dict[str, Any]:
    response = client.post(f"/api/cases/{case_id}/submit", headers=patient.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())
