"""Does a study name the account's holder? Names compared across scripts, birth dates by day.

An account says ``Анна Иванова``; the hospital's DICOM says ``IVANOVA^ANNA``, or
``SHCHERBAKOVA`` in one passport's spelling and ``SCHERBAKOVA`` in another's. So each name is
compared part by part (DICOM PN: ``Family^Given^Middle``) with the account's words in any
order, and a Cyrillic word counts as written in any of the transliteration schemes passports,
hospitals and maps use (``iuliia``: ICAO Doc 9303 on passports since 2013, the older MVD and
GOST passport schemes, BGN/PCGN, Wikipedia, Moscow Metro, GOST 7.79, scientific); words in
other scripts go through ``anyascii``. Case, accents and the small differences between
schemes (``IU``/``YU``/``JU``, ``KH``/``H``, doubled letters) are ignored. See
docs/intake-validation.md, "Identity check".

A part missing on either side (no birth date in the account, no given name in the study) is
"not checked", never a difference.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from functools import lru_cache

import iuliia
from anyascii import anyascii

SCHEMES = (
    iuliia.ICAO_DOC_9303,
    iuliia.GOST_52535,
    iuliia.MVD_782,
    iuliia.MVD_310,
    iuliia.BGN_PCGN,
    iuliia.WIKIPEDIA,
    iuliia.MOSMETRO,
    iuliia.GOST_779,
    iuliia.SCIENTIFIC,
    iuliia.ALA_LC,
    iuliia.YANDEX_MONEY,
)
"""Every spelling of a Cyrillic word a passport or a hospital system is likely to have used."""

_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_WORD_SPLIT = re.compile(r"[\s,;/]+")
# Differences between the schemes themselves, folded away (in this order) before comparing.
_LOOSE = (("shch", "sh"), ("sch", "sh"), ("kh", "h"), ("x", "ks"), ("ph", "f"), ("w", "v"))
_LOOSE_LETTERS = str.maketrans({"y": "i", "j": "i"})
_DOUBLED = re.compile(r"(.)\1+")


class Outcome(StrEnum):
    match = "match"
    differs = "differs"
    not_checked = "not_checked"


class Part(StrEnum):
    family_name = "family_name"
    given_name = "given_name"
    middle_name = "middle_name"
    birth_date = "birth_date"


@dataclass(frozen=True)
class PartCheck:
    """One part of the identity: what the account says, what the study says, and whether they
    agree. Birth dates are given as DICOM dates (``YYYYMMDD``) on both sides."""

    part: Part
    outcome: Outcome
    account: str | None
    scans: str | None


def _ascii_letters(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return "".join(ch for ch in anyascii(plain).lower() if "a" <= ch <= "z")


def _loose(spelling: str) -> str:
    for written, read in _LOOSE:
        spelling = spelling.replace(written, read)
    return _DOUBLED.sub(r"\1", spelling.translate(_LOOSE_LETTERS))


@lru_cache(maxsize=4096)
def spellings(word: str) -> frozenset[str]:
    """The loose Latin forms ``word`` may be written in (one, unless it is Cyrillic)."""
    forms = {_ascii_letters(word)}
    if _CYRILLIC.search(word):
        forms.update(_ascii_letters(scheme.translate(word)) for scheme in SCHEMES)
    return frozenset(_loose(form) for form in forms if form)


def same_word(first: str, second: str) -> bool:
    """Whether two name words are one name, whatever the script and scheme."""
    return bool(spellings(first) & spellings(second))


def _words(text: str) -> list[str]:
    return [word for word in _WORD_SPLIT.split(text.strip()) if spellings(word)]


def _dicom_groups(patient_name: str) -> list[list[str]]:
    """The PN value's component groups (alphabetic, ideographic, phonetic), each as
    [family, given, middle] (empty strings where absent)."""
    groups = []
    for group in patient_name.split("="):
        components = [*group.split("^"), "", "", ""][:3]
        if any(c.strip() for c in components):
            groups.append([c.strip() for c in components])
    return groups


def compare_names(account_name: str, patient_name: str | None) -> tuple[PartCheck, ...]:
    """Family, given and middle name of the study against the account's name, part by part."""
    groups = _dicom_groups(patient_name or "")
    if not groups:
        return (PartCheck(Part.family_name, Outcome.not_checked, account_name, None),)
    results = [_compare_group(_words(account_name), group) for group in groups]
    # A name written in two scripts agrees if either spelling does: the best group counts.
    return min(results, key=lambda checks: sum(c.outcome == Outcome.differs for c in checks))


def _compare_group(account_words: list[str], group: list[str]) -> tuple[PartCheck, ...]:
    family, given, middle = group
    if family and not given and len(_words(family)) > 1:
        # "IVANOVA ANNA" in the family component alone: the first word is the family name.
        first, *rest = _words(family)
        family, given = first, " ".join(rest)
    unused = list(account_words)
    matched: dict[Part, list[str]] = {}
    parts = [(Part.family_name, family), (Part.given_name, given), (Part.middle_name, middle)]
    for part, value in parts:
        for word in _words(value):
            found = next((own for own in unused if same_word(own, word)), None)
            if found is not None:
                unused.remove(found)
                matched.setdefault(part, []).append(found)
    checks = []
    for part, value in parts:
        if not value:
            continue
        if part in matched:
            checks.append(PartCheck(part, Outcome.match, " ".join(matched[part]), value))
        elif part == Part.middle_name and not unused:
            # A patronymic in the study that the account does not give: nothing to compare.
            checks.append(PartCheck(part, Outcome.not_checked, None, value))
        else:
            checks.append(PartCheck(part, Outcome.differs, " ".join(unused) or None, value))
    return tuple(checks)


def _dicom_day(value: str | None) -> date | None:
    try:
        return datetime.strptime((value or "").strip(), "%Y%m%d").date()
    except ValueError:
        return None


def compare_birth_dates(account: date | None, scans: str | None) -> PartCheck:
    """The account's birth date against the study's ``PatientBirthDate`` (``YYYYMMDD``)."""
    own = account.strftime("%Y%m%d") if account else None
    theirs = _dicom_day(scans)
    if account is None or theirs is None:
        return PartCheck(Part.birth_date, Outcome.not_checked, own, scans or None)
    outcome = Outcome.match if theirs == account else Outcome.differs
    return PartCheck(Part.birth_date, outcome, own, theirs.strftime("%Y%m%d"))


@lru_cache(maxsize=4096)
def check_study(
    account_name: str,
    account_birth: date | None,
    patient_name: str | None,
    patient_birth_date: str | None,
) -> tuple[PartCheck, ...]:
    """Every part of one study's patient against the account (memoised: a dashboard asks the
    same question for each of a patient's studies)."""
    return (
        *compare_names(account_name, patient_name),
        compare_birth_dates(account_birth, patient_birth_date),
    )


def differs(checks: tuple[PartCheck, ...]) -> bool:
    """Whether any part differs (a part not checked does not)."""
    return any(check.outcome == Outcome.differs for check in checks)
