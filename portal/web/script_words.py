"""The words the pages' scripts show, translated on the server and handed over as JSON.

A script never carries English of its own: the page embeds its word set in the reader's
language (``<script type="application/json" id="words-upload">``, data, never executed) and
the script fills in the ``%(name)s`` placeholders. A plural entry is sent as its form for each
CLDR plural category of the language (``one``, ``few``, ``many``, ``other``), which the script
picks with ``Intl.PluralRules`` — the same categories Babel's catalogues are written for.
"""

from __future__ import annotations

import json
from functools import cache

from babel import Locale
from markupsafe import Markup

from portal.i18n import N_, N_plural, current, gettext, translations

Plural = tuple[str, str]

UPLOAD: dict[str, str | Plural] = {
    "lost": N_("The server lost this upload; choose the file again."),
    "kind_dicom": N_("DICOM image"),
    "kind_pdf": N_("PDF document"),
    "kind_jpeg": N_("photo"),
    "kind_png": N_("image"),
    "kind_zip": N_("archive"),
    "files": N_plural("%(num)s file", "%(num)s files"),
    "nothing": N_(
        "Nothing to upload: the chosen files are empty, system files or already uploading."
    ),
    "uploading": N_("Uploading %(files)s (%(size)s)."),
    "left_out": N_plural(
        "%(num)s empty, system or repeated file left out.",
        "%(num)s empty, system or repeated files left out.",
    ),
    "server_failed": N_("The server could not process this file."),
    "entries": N_("%(done)s of %(total)s"),
    "still_checking": N_("The server is still checking this file; reload the page later."),
    "signed_out": N_(
        "You were signed out. Sign in again and choose the file again: it continues where it "
        "stopped."
    ),
    "refused": N_("The server refused this file (error %(status)s)."),
    "unreadable": N_("This file cannot be read any more (was the disk removed?). Choose it again."),
    "broken": N_("Something went wrong in this page; reload it and choose the file again."),
    "offline": N_("Waiting for the connection… The upload continues by itself when it is back."),
    "busy": N_("The server is busy; trying again in %(seconds)s s…"),
    "back": N_("Connected again; uploading."),
    "paused": N_("Paused. Nothing already sent is lost; choose Resume to continue."),
    "again": N_("Uploading again."),
    "accepted": N_plural("%(num)s file accepted", "%(num)s files accepted"),
    "rejected": N_plural("%(num)s not accepted", "%(num)s not accepted"),
    "archive_result": N_("%(accepted)s."),
    "archive_result_both": N_("%(accepted)s, %(rejected)s."),
    "accepted_as": N_("Accepted: %(kind)s"),
    "accepted_again": N_("Accepted: %(kind)s (already in this case)"),
    "nothing_used": N_("Nothing in this file could be used."),
    "not_accepted": N_("Not accepted: %(reason)s"),
    "no_dicomdir": N_("The archive has no DICOMDIR to check it against."),
    "dicomdir_arrived": N_("%(arrived)s of %(listed)s files listed in the DICOMDIR arrived."),
    "missing": N_("Missing: %(names)s."),
    "missing_more": N_("Missing: %(names)s and %(more)s more."),
    "done": N_("Done: %(accepted)s."),
    "done_both": N_("Done: %(accepted)s, %(rejected)s (the reasons are shown with each file)."),
    "overall": N_("%(finished)s of %(files)s done · %(sent)s of %(total)s"),
    "queued": N_("Waiting to start"),
    "progress": N_("%(percent)s · %(sent)s of %(total)s"),
    "waiting": N_("Waiting for the connection…"),
    "paused_at": N_("Paused at %(percent)s"),
    "importing": N_("Uploaded; importing its files: %(entries)s…"),
    "checking": N_("Uploaded; the server is checking it…"),
    "unit_b": N_("%(size)s B"),
    "unit_kb": N_("%(size)s kB"),
    "unit_mb": N_("%(size)s MB"),
    "unit_gb": N_("%(size)s GB"),
    "unit_tb": N_("%(size)s TB"),
}

SETS: dict[str, dict[str, str | Plural]] = {"upload": UPLOAD}


@cache
def _samples(language: str) -> dict[str, int | float]:
    """A number of each CLDR plural category of ``language`` (``few`` → 2 in Russian)."""
    rule = Locale.parse(language).plural_form
    found: dict[str, int | float] = {}
    for number in [*range(0, 200), 1.5]:
        found.setdefault(rule(number), number)
    return found


def _forms(entry: Plural) -> dict[str, str]:
    """The message's form for each plural category (a fraction takes the form of 2)."""
    catalogue = translations(current())
    singular, plural = entry
    return {
        category: catalogue.ungettext(singular, plural, number if isinstance(number, int) else 2)
        for category, number in _samples(current()).items()
    }


def script_words(name: str) -> Markup:
    """The word set ``name`` in the current language, as JSON safe inside ``<script>``."""
    words = {
        key: _forms(entry) if isinstance(entry, tuple) else gettext(entry)
        for key, entry in SETS[name].items()
    }
    text = json.dumps(words, ensure_ascii=False).replace("<", "\\u003c")
    return Markup(text)  # noqa: S704 - JSON with "<" escaped: no markup can close the element
