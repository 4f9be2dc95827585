"""The interface's language: gettext catalogues (Babel) and locale-aware dates and numbers.

Every string a person reads is an English msgid passed through ``_`` (Python) or ``{% trans %}``
/ ``_()`` (templates, Jinja2's i18n extension). Catalogues are ``portal/locale/<code>/
LC_MESSAGES/messages.po``; a language with a catalogue is an interface language, so adding
one is adding a catalogue (``make messages`` extracts and updates them). The ``.po`` files are
compiled in memory when first used: nothing binary is kept in the repository.

The language of the work in progress is a context variable: a request sets it (the account's
setting, then the ``lang`` cookie, then ``Accept-Language``: ``choose``), a mail sets it to
its recipient's, the opinion PDF to the opinion's. Module-level text (status words, mail
templates) is marked with ``N_`` and translated where it is shown.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
SOURCE_LANGUAGE = "en"
LANGUAGE_COOKIE = "lang"

FORMAT_LOCALES = {"en": "en_GB"}
"""Dates read ``3 Dec 2026`` in English (day first, as most of our patients write them)."""

language_var: ContextVar[str] = ContextVar("language", default=SOURCE_LANGUAGE)


def catalogue_path(code: str) -> Path:
    return LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def interface_languages() -> tuple[str, ...]:
    """English and every language with a catalogue, in that order."""
    found = sorted(
        path.name for path in LOCALE_DIR.iterdir() if catalogue_path(path.name).is_file()
    )
    return (SOURCE_LANGUAGE, *(code for code in found if code != SOURCE_LANGUAGE))


@cache
def native_name(code: str) -> str:
    """The language's name in itself, capitalised for a menu (``Русский``)."""
    try:
        name = Locale.parse(code).get_display_name(code) or code
    except (ValueError, UnknownLocaleError):
        return code
    return name[:1].upper() + name[1:]


@cache
def translations(code: str) -> NullTranslations:
    """The catalogue of ``code`` compiled in memory (fuzzy and empty entries left out)."""
    path = catalogue_path(code)
    if code == SOURCE_LANGUAGE or not path.is_file():
        return NullTranslations()
    with path.open("rb") as source:
        catalogue = read_po(source, locale=code, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalogue, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def language_name(code: str) -> str:
    """The language ``code`` named in the current language (``Russian``, ``русский``)."""
    return _language_name(code, current())


@lru_cache(maxsize=1024)  # codes come from data: bounded
def _language_name(code: str, language: str) -> str:
    try:
        return Locale.parse(code).get_display_name(_babel_locale(language)) or code
    except (ValueError, UnknownLocaleError):
        return code


def supported(code: str | None) -> str | None:
    """``code`` (``ru``, ``ru-RU``, ``RU``) as an interface language, or None."""
    if not code:
        return None
    base = code.strip().replace("_", "-").split("-", 1)[0].lower()
    return base if base in interface_languages() else None


def from_accept_language(header: str | None) -> str | None:
    """The first interface language the browser asks for, by quality (RFC 9110 §12.5.4)."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:32]):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        code = supported(tag)
        if code and quality > 0:
            ranked.append((-quality, position, code))
    return min(ranked)[2] if ranked else None


def choose(
    *, account: str | None = None, cookie: str | None = None, accept_language: str | None = None
) -> str:
    """The account's setting, then the cookie, then the browser's preference, then English."""
    return (
        supported(account)
        or supported(cookie)
        or from_accept_language(accept_language)
        or SOURCE_LANGUAGE
    )


def current() -> str:
    return language_var.get()


@contextlib.contextmanager
def speaking(code: str | None) -> Iterator[str]:
    """Translate in ``code`` (an interface language, else English) inside the block."""
    language = supported(code) or SOURCE_LANGUAGE
    token = language_var.set(language)
    try:
        yield language
    finally:
        language_var.reset(token)


def gettext(message: str, **values: object) -> str:
    """``message`` in the current language, with ``%(name)s`` placeholders filled."""
    text = translations(current()).ugettext(message)
    return text % values if values else text


_ = gettext


def ngettext(singular: str, plural: str, count: int, **values: object) -> str:
    """The form of ``singular``/``plural`` for ``count`` (``%(num)s`` is the count)."""
    text = translations(current()).ungettext(singular, plural, count)
    return text % {"num": format_number(count), **values}


def plural_form(singular: str, plural: str, count: int) -> str:
    """The form for ``count`` with ``%(num)s`` filled and other placeholders left for the caller
    (Jinja2's ``ngettext`` fills those, escaping them)."""
    text = translations(current()).ungettext(singular, plural, count)
    return text.replace("%(num)s", format_number(count))


def pgettext(context: str, message: str, **values: object) -> str:
    """``message`` in ``context`` (the same English word translated two ways)."""
    text = translations(current()).upgettext(context, message)
    return text % values if values else text


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue; it is translated where it is shown."""
    return message


def N_plural(singular: str, plural: str) -> tuple[str, str]:
    """Mark a plural message for the catalogue (``make messages`` extracts it with
    ``-k N_plural:1,2``); it is translated with a count where it is shown."""
    return singular, plural


EXTRACTION_KEYWORDS = {"N_plural": (1, 2)}
"""Markers beyond Babel's defaults (``_``, ``gettext``, ``ngettext``, ``N_`` ...)."""


def _locale() -> Locale:
    """The current language's Babel locale (parsed once per language: pages format hundreds
    of numbers and dates)."""
    return _babel_locale(current())


@cache
def _babel_locale(language: str) -> Locale:
    return Locale.parse(FORMAT_LOCALES.get(language, language))


def format_date(value: date | datetime | None, *, style: str = "medium") -> str:
    """``3 Dec 2026`` / ``3 дек. 2026 г.``; a dash for no date."""
    if value is None:
        return "—"
    if isinstance(value, datetime):
        value = value.date()
    return babel_dates.format_date(value, format=style, locale=_locale())


def format_day(value: date | datetime | None) -> str:
    """A day of the month without the year, as the locale writes it: ``10 Dec``, ``10 дек.``."""
    if value is None:
        return "—"
    if isinstance(value, datetime):
        value = value.date()
    return babel_dates.format_skeleton("MMMd", value, locale=_locale())


def format_moment(value: datetime | None) -> str:
    """A date and time in UTC (the portal's one time zone), named as such."""
    if value is None:
        return "—"
    moment = babel_dates.format_datetime(value, format="medium", tzinfo=None, locale=_locale())
    return f"{moment} UTC"


def format_minute(value: datetime | None) -> str:
    """A moment in UTC to the minute, for documents and mail: ``1 Dec 2026, 16:40 UTC``."""
    if value is None:
        return "\u2014"
    moment = value.astimezone(UTC) if value.tzinfo else value
    time = babel_dates.format_time(moment, format="short", tzinfo=None, locale=_locale())
    return gettext("%(date)s, %(time)s UTC", date=format_date(moment), time=time)


def format_number(value: int | float | Decimal) -> str:
    if type(value) is int:
        # Pages show hundreds of counts (images, studies, cases) and Babel takes tens of
        # microseconds for each; whole numbers repeat, so each is formatted once per language.
        return _format_count(value, current())
    return babel_numbers.format_decimal(value, locale=_locale())


@lru_cache(maxsize=8192)
def _format_count(value: int, language: str) -> str:
    if 0 <= value < 1000:
        return str(value)  # no grouping, no sign, Latin digits (Babel's default) in every locale
    return babel_numbers.format_decimal(value, locale=_babel_locale(language))


def format_money(value: int | float | Decimal, currency: str) -> str:
    """``$1,200`` / ``1 200 $``: whole amounts without cents."""
    return (
        babel_numbers.format_currency(
            value, currency, locale=_locale(), format_type="standard", decimal_quantization=False
        )
        .replace(".00", "")
        .replace(",00", "")
    )


def format_size(size: int) -> str:
    """A file size people read, in binary units: ``512 bytes``, ``1.4 MiB``, ``1,4 МиБ``."""
    if size < 1024:
        return ngettext("%(num)s byte", "%(num)s bytes", size)
    units = (N_("%(size)s KiB"), N_("%(size)s MiB"), N_("%(size)s GiB"), N_("%(size)s TiB"))
    amount, step = size / 1024, 0
    while amount >= 1024 and step < len(units) - 1:
        amount, step = amount / 1024, step + 1
    unit = units[step]
    return gettext(unit, size=babel_numbers.format_decimal(round(amount, 1), locale=_locale()))
