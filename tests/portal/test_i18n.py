"""The interface's language: catalogues complete, the language chosen as users expect."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient

from portal import i18n
from tests.fixtures.app import Accounts
from tests.portal.test_pages import browser_sign_in, check_page

ROOT = Path(__file__).resolve().parents[2]


def extracted() -> Catalog:
    """What `make messages` extracts: every string the code and templates pass to gettext."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    catalogue = Catalog()
    keywords = {**DEFAULT_KEYWORDS, **i18n.EXTRACTION_KEYWORDS}
    for filename, lineno, message, comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=keywords
    ):
        catalogue.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalogue


@pytest.mark.parametrize("language", [code for code in i18n.interface_languages() if code != "en"])
def test_every_string_the_code_uses_is_translated(language: str):
    code = extracted()
    with i18n.catalogue_path(language).open("rb") as source:
        catalogue = read_po(source, locale=language)
    assert len(code) > 50, "the extraction found (almost) nothing: babel.cfg is wrong"
    missing, fuzzy = [], []
    for message in code:
        if not message.id:
            continue
        entry = catalogue.get(message.id, context=message.context)
        if entry is None:
            missing.append((message.id, message.locations[:1]))
            continue
        strings = (entry.string,) if isinstance(entry.string, str) else entry.string
        if not strings or not all(strings):
            missing.append((message.id, message.locations[:1]))
        elif entry.fuzzy:
            fuzzy.append(message.id)
    assert not missing, f"{len(missing)} strings have no {language} translation: {missing[:20]}"
    assert not fuzzy, f"fuzzy {language} entries (check and unmark them): {fuzzy[:20]}"
    problems = [(entry.id, errors) for entry, errors in catalogue.check()]
    assert not problems, f"placeholders differ from the English: {problems[:10]}"


def test_every_language_offered_has_a_catalogue_and_ru_is_one():
    assert i18n.interface_languages()[0] == "en" and "ru" in i18n.interface_languages()
    assert i18n.native_name("ru") == "Русский"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ru-RU,ru;q=0.9,en-US;q=0.8", "ru"),
        ("en-GB,en;q=0.9,ru;q=0.8", "en"),
        ("de-DE,de;q=0.9,ru;q=0.5", "ru"),
        ("fr, *;q=0.1", "en"),
        ("ru;q=0, en;q=0.2", "en"),
        ("ru;q=bogus", "en"),
        ("", "en"),
        (",,,;;;q=", "en"),
    ],
)
def test_accept_language_is_read_by_quality(header: str, expected: str):
    assert i18n.choose(accept_language=header) == expected


def test_the_account_comes_first_then_the_cookie_then_the_browser():
    assert i18n.choose(account="ru", cookie="en", accept_language="en") == "ru"
    assert i18n.choose(account="de", cookie="ru", accept_language="en") == "ru"
    assert i18n.choose(account=None, cookie="xx", accept_language="ru") == "ru"


def test_dates_numbers_and_sizes_follow_the_language():
    from datetime import date

    with i18n.speaking("en"):
        assert i18n.format_date(date(2026, 12, 10)) == "10 Dec 2026"
        assert i18n.format_size(3 * 1024 * 1024 // 2) == "1.5 MiB"
        assert i18n.format_size(1) == "1 byte"
    with i18n.speaking("ru"):
        assert i18n.format_date(date(2026, 12, 10)) == "10 дек. 2026\u202fг."
        assert i18n.format_size(3 * 1024 * 1024 // 2) == "1,5 МиБ"
        assert i18n.format_size(2) == "2 байта" and i18n.format_size(5) == "5 байт"
        assert i18n.format_money(1200, "USD") in {"1 200 $", "1\xa0200\xa0$"}


@pytest.mark.parametrize("language", ["en", "ru"])
def test_counts_are_formatted_as_babel_formats_them(language: str):
    from babel import numbers

    locale = i18n.FORMAT_LOCALES.get(language, language)
    with i18n.speaking(language):
        for value in (0, 1, 999, 1000, 12_345, 1_000_000, -5, -12_345):
            for _twice in range(2):  # the second answer comes from the cache
                assert i18n.format_number(value) == numbers.format_decimal(value, locale=locale)
        assert i18n.format_number(2.5) == numbers.format_decimal(2.5, locale=locale)


def test_a_page_speaks_the_browsers_language_and_says_so(client: TestClient):
    response = client.get("/login", headers={"accept-language": "ru-RU,ru;q=0.9,en;q=0.8"})
    check_page(response)
    assert '<html lang="ru">' in response.text and response.headers["content-language"] == "ru"
    assert "Войти" in response.text and "Sign in" not in response.text
    english = client.get("/login", headers={"accept-language": "en-GB"})
    assert '<html lang="en">' in english.text and "Sign in" in english.text


def test_the_switcher_sets_a_cookie_that_outranks_the_browser(client: TestClient):
    switched = client.get("/language/ru?next=/register", follow_redirects=False)
    assert switched.status_code == 303 and switched.headers["location"] == "/register"
    page = client.get("/register", headers={"accept-language": "en"})
    assert '<html lang="ru">' in page.text and "Создать учётную запись" in page.text
    # The new account's language starts as the one the visitor reads.
    assert '<option value="ru" lang="ru" selected>' in page.text
    elsewhere = client.get("/language/xx?next=//evil.example", follow_redirects=False)
    assert elsewhere.headers["location"] == "/" and "set-cookie" not in elsewhere.headers


def test_a_signed_in_account_speaks_its_own_language_and_can_change_it(
    client: TestClient, accounts: Accounts
):
    patient = accounts.patient(language="ru")
    browser_sign_in(client, patient)
    page = client.get("/cases", headers={"accept-language": "en"})
    assert '<html lang="ru">' in page.text and "Мои обращения" in page.text
    form = check_page(page).form("/account/language")
    switched = client.post(
        "/account/language",
        data={"csrf_token": form["inputs"]["csrf_token"], "language": "en", "next": "/cases"},
        follow_redirects=False,
    )
    assert switched.status_code == 303 and switched.headers["location"] == "/cases"
    client.cookies.delete(i18n.LANGUAGE_COOKIE)
    again = client.get("/cases", headers={"accept-language": "ru"})
    assert '<html lang="en">' in again.text and "My cases" in again.text
    profile = client.get("/api/me", headers=patient.headers)
    assert profile.json()["language"] == "en"
    refused = client.post(
        "/account/language",
        data={"csrf_token": form["inputs"]["csrf_token"], "language": "xx"},
        follow_redirects=False,
    )
    assert refused.status_code == 422 and "Этот язык недоступен" not in refused.text


def test_api_errors_follow_accept_language(client: TestClient):
    response = client.get("/api/cases", headers={"accept-language": "ru"})
    assert response.status_code == 401
    assert "Войдите" in response.text
