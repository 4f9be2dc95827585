"""The page before sign-in: what a visitor learns there, in their language, from the settings
and the specialists who agreed to be listed."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from portal.settings import Settings
from storage.embedded import EmbeddedS3
from tests.fixtures.app import Accounts, make_settings
from tests.portal.test_pages import browser_sign_in, check_page


@pytest.fixture
def settings(tmp_path: Path, database_url: str, seaweed: EmbeddedS3) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        seaweed,
        price_standard=Decimal(350),
        price_urgent=Decimal(1250),
        price_currency="USD",
        prices_set_on=date(2026, 11, 20),
        standard_due_business_days=4,
        urgent_due_hours=36,
        contact_email="help@clinic.example",
    )


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def section(html: str, name: str) -> str:
    return text_of(html.split(f'id="{name}"', 1)[1].split("</section>", 1)[0])


def test_a_visitor_reads_how_it_works_turnaround_price_and_contact(client: TestClient):
    response = client.get("/")
    assert response.status_code == 200
    page = check_page(response)
    for part in ("how-it-works", "prices", "specialists", "your-data", "faq", "contact"):
        assert part in page.ids, part
    prices = section(response.text, "prices")
    assert "4 working days" in prices and "36 hours" in prices  # from the settings
    assert "$350" in prices and "$1,250" in prices
    assert "indicative, set on 20 Nov 2026" in prices
    assert "help@clinic.example" in section(response.text, "contact")
    assert "/register" in page.links and "/login" in page.links


def test_the_page_speaks_russian_to_a_russian_browser(client: TestClient):
    response = client.get("/", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    assert response.status_code == 200 and response.headers["content-language"] == "ru"
    assert '<html lang="ru">' in response.text
    prices = section(response.text, "prices")
    assert "4 рабочих дня" in prices and "36 часов" in prices
    assert "1 250 $" in prices  # Babel: Russian groups digits and puts the sign after
    assert "Как это работает" in text_of(response.text)
    english = ("How it works", "Turnaround and price", "What happens to your data", "Contact")
    assert not [words for words in english if words in response.text]


def test_only_specialists_who_opted_in_are_listed_and_without_contact_details(
    client: TestClient, accounts: Accounts
):
    listed = accounts.specialist(
        "Dr Listed Radiologist",
        specialties=["neuroradiology"],
        modalities=["MR", "CT"],
        languages=["en", "ru"],
        credentials="MD, PhD, board-certified radiologist",
        public_listing=True,
    )
    accounts.specialist("Dr Private Surgeon", specialties=["spine_surgery"], languages=["en"])
    response = client.get("/", headers={"Accept-Language": "en"})
    shown = section(response.text, "specialists")
    assert "Dr Listed Radiologist" in shown and "board-certified radiologist" in shown
    assert "neuroradiology" in shown and "MRI" in shown and "Russian" in shown
    assert "Dr Private Surgeon" not in response.text
    assert listed.email not in response.text


def test_signed_in_visitors_go_on_to_their_cases_and_still_reach_the_page(
    client: TestClient, accounts: Accounts
):
    patient = accounts.patient()
    browser_sign_in(client, patient)
    front = client.get("/", follow_redirects=False)
    assert front.status_code == 303 and front.headers["location"] == "/cases"
    about = client.get("/about")
    assert about.status_code == 200 and "how-it-works" in check_page(about).ids
