"""A Russian-speaking patient's whole journey in real Chromium, on a desktop (1280 px) and on a
phone (390 px, touch): the public page, registering, opening a case, uploading, submitting,
answering the specialist's question, reading the opinion and downloading its PDF, requesting a
treatment plan — every page
in Russian, with no console error, no English left from the catalogue, and nothing wider than
the screen. The specialist's side goes through the API (``test_journey.py`` drives it in the
browser)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from babel.messages.pofile import read_po
from fastapi import FastAPI
from pypdf import PdfReader
from sqlmodel import Session

from portal import i18n
from portal.audit.service import SYSTEM
from reviewers.treatment import seed
from tests.browser.conftest import Portal
from tests.fixtures.app import PASSWORD, Accounts
from tests.fixtures.live import LiveServer
from tests.fixtures.logs import SENSITIVE
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

QUESTION = "Были ли у вас операции на позвоночнике или биопсия этого позвонка?"
ANSWER = "Нет, только лечебная физкультура прошлой весной."
IMPRESSION = "Типичная гемангиома тела позвонка Th11 без признаков агрессивности."
OPINION = {
    "summary": "Одиночное образование тела позвонка Th11, характерное для гемангиомы.",
    "findings": "Грубые вертикальные трабекулы в теле Th11; кортикальный слой цел.",
    "impression": IMPRESSION,
    "answers": [{"question": "Нужно ли лечение?", "answer": "Сейчас лечение не нужно."}],
    "recommendations": {
        "treatment_options": "Наблюдение.",
        "urgency": "routine",
        "further_tests": "МРТ грудного отдела через 12 месяцев.",
        "guide_options": ["vertebroplasty", "embolization"],
    },
    "limitations": "Только КТ, без прежних снимков для сравнения.",
}
SCREENS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 3,
        "is_mobile": True,
        "has_touch": True,
    },
}


@cache
def english_left_over() -> tuple[str, ...]:
    """Literal runs of the catalogue's English that a Russian page must not show: every msgid
    with a translation of its own, cut at its placeholders, runs of 12 characters or more."""
    with i18n.catalogue_path("ru").open("rb") as source:
        catalogue = read_po(source, locale="ru")
    runs: set[str] = set()
    for message in catalogue:
        if not message.id or not message.string:
            continue
        english = message.id if isinstance(message.id, str) else message.id[0]
        russian = message.string if isinstance(message.string, str) else message.string[0]
        if english == russian:
            continue
        for run in re.split(r"%\([a-z_]+\)s|<[^>]+>", english):
            if len(run.strip()) >= 12 and re.search(r"[a-z]{3}", run):
                runs.add(run.strip())
    return tuple(sorted(runs))


class Phone:
    """One browser context speaking Russian, checking every page it shows."""

    def __init__(self, browser: Browser, live: LiveServer, app: FastAPI, screen: str) -> None:
        self.context = browser.new_context(
            base_url=live.url, locale="ru-RU", accept_downloads=True, **SCREENS[screen]
        )
        self.context.set_default_timeout(30_000)
        self.page = self.context.new_page()
        self.portal = Portal(page=self.page, server=live, app=app)
        self.errors = self.portal.errors
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", self._console)
        self.visited: list[str] = []
        self.touch = bool(SCREENS[screen].get("has_touch"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.location.get("url", "").endswith("/favicon.ico"):
            return
        if message.type == "error":
            self.errors.append(f"console error: {message.text} ({message.location})")

    def check(self) -> None:
        """The page shown now: Russian, nothing left in English, nothing wider than the screen."""
        page = self.page
        page.wait_for_load_state("load")
        self.visited.append(page.url)
        assert page.locator("html").get_attribute("lang") == "ru", page.url
        text = page.locator("body").inner_text()
        left = [run for run in english_left_over() if run in text]
        assert not left, f"untranslated on {page.url}: {left}"
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        wide = page.evaluate(
            "() => [...document.querySelectorAll('body *')]"
            ".filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth)"
            ".slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id + ' '"
            " + (e.textContent || '').trim().slice(0, 40))"
        )
        assert overflow <= 0, f"{page.url} is {overflow} px wider than the screen: {wide}"

    def close(self) -> None:
        self.context.close()


@pytest.fixture(params=sorted(SCREENS))
def phone(request: Any, browser: Browser, live: LiveServer, app: FastAPI) -> Iterator[Phone]:
    opened = Phone(browser, live, app, request.param)
    yield opened
    opened.close()
    assert not opened.errors, f"errors in the pages: {opened.errors}"


def swipe(page: Page, start: list[tuple[int, int]], end: list[tuple[int, int]]) -> None:
    """Fingers down at ``start``, moved in steps to ``end``, lifted: real touch input, which
    Chromium turns into pointer events as a phone's would be."""
    cdp = page.context.new_cdp_session(page)

    def points(fingers: list[tuple[float, float]]) -> list[dict[str, float]]:
        return [{"x": x, "y": y, "id": number} for number, (x, y) in enumerate(fingers)]

    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": points(start)})
    for step in range(1, 6):
        moved = [
            (x0 + (x1 - x0) * step / 5, y0 + (y1 - y0) * step / 5)
            for (x0, y0), (x1, y1) in zip(start, end, strict=True)
        ]
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": points(moved)})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def above_the_fold(page: Page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return box["y"] < page.viewport_size["height"] if page.viewport_size else False


def test_a_russian_speaking_patient_does_everything_in_russian(
    phone: Phone, accounts: Accounts, tmp_path: Path
) -> None:
    page = phone.page
    specialist = accounts.specialist(
        specialties=["spine_surgery"],
        body_regions=["spine"],
        modalities=["CT"],
        languages=["ru"],
        credentials="Нейрохирург, лицензия RU-0042",
        public_listing=True,
    )
    api = accounts.client
    with Session(accounts.app.state.engine) as session:
        seed.load_seed(session=session, ctx=SYSTEM)  # the treatment guide, as the demo has it

    # The public page, then registering: the language comes from the browser.
    page.goto("/")
    phone.check()
    expect(page.locator("#prices")).to_contain_text("рабочих дн")
    expect(page.locator("#specialists")).to_contain_text(specialist.full_name)
    page.locator("#start").click()
    page.wait_for_url("**/register")
    phone.check()
    email = f"anna-{secrets.token_hex(3)}@example.org"
    SENSITIVE.add(email)
    page.locator("input[name=full_name]").fill("Анна Иванова")
    page.locator("input[name=email]").fill(email)
    page.locator("input[name=password]").fill(PASSWORD)
    expect(page.locator("select[name=language]")).to_have_value("ru")
    page.locator("form[action='/register'] button[type=submit]").click()
    page.wait_for_url("**/login?registered=1")
    phone.check()
    page.locator("input[name=email]").fill(email)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form[action='/login'] button[type=submit]").click()
    page.wait_for_url("**/cases")
    phone.check()

    # Opening a case: the opinion's language is offered from the specialists' languages.
    page.goto("/cases/new")
    phone.check()
    expect(page.locator("select[name=language]")).to_have_value("ru")
    consent = page.locator(".consent-text")
    expect(consent).to_contain_text("Я прошу дать независимое второе мнение")
    clipped = consent.evaluate("box => box.scrollHeight - box.clientHeight")
    assert clipped <= 1, f"the consent text is cut off by {clipped} px"
    page.locator("input[name=subject]").fill("Гемангиома Th11")
    page.locator("textarea[name=clinical_question]").fill(
        "Это типичная гемангиома? Нужно ли её лечить?"
    )
    page.locator("input[name=accept_consent]").check()
    page.locator("form[action='/cases/new'] button[type=submit]").click()
    page.wait_for_url("**/cases/*?done=opened")
    phone.check()
    case_id = page.url.split("?")[0].rsplit("/", 1)[1]
    expect(page.locator("#next-step")).to_have_attribute("data-next", "files")
    expect(page.locator("#progress [aria-current=step]")).to_have_attribute("data-step", "files")

    # Uploading three CT images and submitting.
    folder = tmp_path / "ct"
    folder.mkdir()
    for number, instance in enumerate(samples.ct_series(3), start=1):
        (folder / f"IM{number:04d}.dcm").write_bytes(instance)
    page.set_input_files("#pick-files", [str(path) for path in sorted(folder.iterdir())])
    expect(page.locator("#upload-status")).to_have_text("Готово: 3 файла принято.")
    expect(page.locator("#uploader")).to_have_attribute("data-refreshed", "true")
    phone.check()
    page.reload()
    expect(page.locator("#next-step")).to_have_attribute("data-next", "submit")
    page.locator("#submit-case").click()
    page.wait_for_url(f"**/cases/{case_id}?done=submitted")
    phone.check()
    expect(page.locator("#case-status")).to_have_attribute("data-status", "assigned")
    expect(page.locator("#next-step")).to_have_attribute("data-next", "wait_for_specialist")

    # The specialist accepts and asks a question; it waits at the top of the patient's page.
    url = f"/api/cases/{case_id}"
    assert api.post(f"{url}/accept", headers=specialist.headers).status_code == 200
    asked = api.post(f"{url}/questions", json={"text": QUESTION}, headers=specialist.headers)
    assert asked.status_code == 201, asked.text
    page.goto(f"/cases/{case_id}")
    phone.check()
    expect(page.locator("#next-step")).to_have_attribute("data-next", "answer_question")
    expect(page.locator("#questions-to-answer")).to_contain_text(QUESTION)
    assert above_the_fold(page, "#questions-to-answer"), "the question is below the fold"
    page.locator("#questions-to-answer textarea[name=text]").fill(ANSWER)
    page.locator("#questions-to-answer button[type=submit]").click()
    page.wait_for_url(f"**/cases/{case_id}?done=answered")
    phone.check()

    # The images, scrolled on this screen (a swipe on a phone, the wheel on a desktop).
    page.goto(f"/cases/{case_id}")
    page.locator("#studies a.series-link").first.click()
    page.wait_for_url(f"**/cases/{case_id}/viewer?series=*")
    phone.check()
    position, window = page.locator("#viewer-position"), page.locator("#viewer-window")
    expect(position).to_have_text("Изображение 2 из 3")
    windowing = window.inner_text()
    if phone.touch:
        swipe(page, [(200, 500)], [(200, 470)])  # one finger up: the next image
        expect(position).to_have_text("Изображение 3 из 3")
        assert window.inner_text() == windowing, "a swipe changed the brightness"
        swipe(page, [(150, 450), (250, 450)], [(100, 450), (300, 450)])  # two fingers apart
        expect(page.locator("#viewer-zoom")).not_to_have_text("100%")
        expect(position).to_have_text("Изображение 3 из 3")
    else:
        page.locator("#viewer").hover()
        page.mouse.wheel(0, 120)
        expect(position).to_have_text("Изображение 3 из 3")

    # The opinion, signed in Russian: at the top of the page, and as a PDF.
    saved = api.put(f"{url}/opinion", json=OPINION, headers=specialist.headers)
    assert saved.status_code == 200, saved.text
    signed = api.post(
        f"{url}/opinion/sign",
        json={"password": specialist.password, "otp": specialist.next_otp()},
        headers=specialist.headers,
    )
    assert signed.status_code == 200, signed.text
    page.goto(f"/cases/{case_id}")
    phone.check()
    expect(page.locator("#next-step")).to_have_attribute("data-next", "read_opinion")
    expect(page.locator("#opinion-impression")).to_have_text(IMPRESSION)
    expect(page.locator("#opinion")).to_contain_text("Срочность: планово")
    assert above_the_fold(page, "#opinion"), "the opinion does not start on the first screen"
    order = page.evaluate(
        "() => [...document.querySelectorAll('main > section')].map(section => section.id)"
    )
    assert order.index("opinion") < order.index("details") < order.index("timeline"), order
    with page.expect_download() as download:
        page.locator("#download-pdf").click()
    text = " ".join(
        (sheet.extract_text() or "") for sheet in PdfReader(download.value.path()).pages
    )
    flat = " ".join(text.split())
    assert IMPRESSION in flat
    assert "Описание исследований" in flat and "Рекомендации" in flat  # the PDF's headings
    assert "Imaging findings" not in flat and "Recommendations" not in flat
    timeline = page.locator("#timeline").inner_text()
    assert "Вы отправили обращение" in timeline and "0/8" not in timeline

    # From the opinion to treatment: the linked options with clinics and indicative prices,
    # then a treatment-plan request.
    treatment = page.locator("#treatment")
    expect(treatment.locator("[data-option=vertebroplasty]")).to_contain_text("$")
    expect(treatment).to_contain_text("ориентировочн")
    start, end = date.today() + timedelta(days=30), date.today() + timedelta(days=40)
    page.locator("#treatment-clinic").select_option("help")
    page.locator("#treatment-request-form input[name=travel_from]").fill(start.isoformat())
    page.locator("#treatment-request-form input[name=travel_to]").fill(end.isoformat())
    page.locator("#treatment-request-form textarea[name=notes]").fill("Удобнее в Москве.")
    page.locator("#request-treatment-plan").click()
    page.wait_for_url(f"**/cases/{case_id}*")
    phone.check()
    expect(page.locator("#treatment .treatment-request")).to_have_attribute(
        "data-status", "requested"
    )
    assert len(phone.visited) >= 12
