"""Validated types for text people type in: used by every input model of the API and forms.

Control characters have no place in names, subjects, questions or opinions, and some break
the database outright (PostgreSQL refuses NUL in text and cannot encode a lone surrogate), so
they are refused at the edge with a 422 that names the field and never quotes the input.
See docs/accounts.md ("Text input").
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

# C0 controls, DEL and C1 controls, and UTF-16 surrogates (a lone one cannot be encoded).
_SINGLE_LINE_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Multi-line text keeps tab, line feed and carriage return (browsers send CR LF).
_MULTI_LINE_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _single_line(value: str) -> str:
    if _SINGLE_LINE_FORBIDDEN.search(value):
        raise ValueError("must not contain control characters or line breaks")
    return value


def _multi_line(value: str) -> str:
    if _MULTI_LINE_FORBIDDEN.search(value):
        raise ValueError("must not contain control characters")
    return value


SingleLineText = Annotated[str, AfterValidator(_single_line)]
"""A name, subject, e-mail address, label or code: one line of printable text."""

MultiLineText = Annotated[str, AfterValidator(_multi_line)]
"""A question, answer, history or opinion section: printable text, tabs and line breaks."""


SUPPORTED_LANGUAGES: dict[str, str] = {
    "en": "English",
    "ru": "Русский",
    "de": "Deutsch",
    "fr": "Français",
    "es": "Español",
    "it": "Italiano",
    "uk": "Українська",
    "ar": "العربية",
    "he": "עברית",
    "tr": "Türkçe",
    "zh": "中文",
}
"""The languages an opinion can be asked for (ISO 639-1), with their own names for menus.

The one list: registration, new cases and the forms offering a choice all use it.
"""


def _supported_language(value: str) -> str:
    code = value.strip().lower()
    if code not in SUPPORTED_LANGUAGES:
        raise ValueError(
            "is not a supported language; use one of " + ", ".join(SUPPORTED_LANGUAGES)
        )
    return code


LanguageCode = Annotated[str, AfterValidator(_supported_language)]
"""One of ``SUPPORTED_LANGUAGES`` (case and surrounding spaces are forgiven)."""
