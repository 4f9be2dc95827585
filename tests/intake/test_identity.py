"""The identity check: names compared across scripts and transliteration schemes, birth dates
by day, and exactly which part differs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest

from portal.intake import identity
from portal.intake.identity import Outcome, Part
from portal.intake.service import identity_check


def outcomes(
    account: str, dicom: str | None, born: date | None = None, dicom_born: str | None = None
):
    checks = identity.check_study(account, born, dicom, dicom_born)
    return {check.part: check.outcome for check in checks}


@pytest.mark.parametrize(
    ("account", "dicom"),
    [
        ("Иванова Анна", "IVANOVA^ANNA"),
        ("Анна Иванова", "Ivanova^Anna"),  # order and case do not matter
        ("Анна Иванова", "ANNA^IVANOVA"),  # nor which component holds which word
        ("Щербакова Юлия", "SHCHERBAKOVA^IULIIA"),  # ICAO Doc 9303 (passports since 2013)
        ("Щербакова Юлия", "SCHERBAKOVA^YULIYA"),  # Moscow Metro, common in hospitals
        ("Юлия Щербакова", "Shcherbakova^Yuliya"),  # BGN/PCGN, Wikipedia
        ("Юлия Щербакова", "SHCHERBAKOVA^JULIA"),  # as many European forms write it
        ("Алексей Ёлкин", "YOLKIN^ALEKSEY"),
        ("Алексей Ёлкин", "ELKIN^ALEKSEI"),
        ("Наталья Хабибуллина", "KHABIBULLINA^NATALIA"),
        ("Евгений Цветков", "TSVETKOV^EVGENY"),
        ("Anna Ivanova", "IVANOVA ANNA"),  # one component with both words
        ("José Müller", "MULLER^JOSE"),  # accents
        ("Анна Иванова", "IVANOVA^ANNA=Иванова^Анна"),  # alphabetic and another group
    ],
)
def test_the_same_person_in_another_script_or_scheme_matches(account: str, dicom: str):
    found = outcomes(account, dicom)
    assert found[Part.family_name] == Outcome.match, found
    assert found[Part.given_name] == Outcome.match, found


@pytest.mark.parametrize(
    ("account", "dicom", "differing"),
    [
        ("Анна Иванова", "IVANOVA^MARIA", {Part.given_name}),
        ("Анна Иванова", "PETROVA^ANNA", {Part.family_name}),
        ("Анна Иванова", "IVANOV^ANNA", {Part.family_name}),  # another person's surname form
        ("Мария Петрова", "IVANOVA^ANNA", {Part.family_name, Part.given_name}),
        ("Olga Ivanova", "CompressedSamples^CT1", {Part.family_name, Part.given_name}),
    ],
)
def test_another_person_differs_in_the_parts_that_differ(account, dicom, differing):
    found = outcomes(account, dicom)
    assert {part for part, outcome in found.items() if outcome == Outcome.differs} == differing


def test_the_differing_part_names_both_sides():
    checks = identity.check_study("Анна Иванова", None, "IVANOVA^MARIA", None)
    by_part = {check.part: check for check in checks}
    assert (by_part[Part.family_name].account, by_part[Part.family_name].scans) == (
        "Иванова",
        "IVANOVA",
    )
    given = by_part[Part.given_name]
    assert (given.outcome, given.account, given.scans) == (Outcome.differs, "Анна", "MARIA")


def test_birth_dates_are_compared_by_day_and_missing_ones_are_not_checked():
    born = date(1980, 3, 12)
    assert outcomes("Anna Ivanova", "IVANOVA^ANNA", born, "19800312")[Part.birth_date] == "match"
    differs = identity.compare_birth_dates(born, "19811203")
    assert (differs.outcome, differs.account, differs.scans) == ("differs", "19800312", "19811203")
    assert identity.compare_birth_dates(None, "19811203").outcome == Outcome.not_checked
    assert identity.compare_birth_dates(born, None).outcome == Outcome.not_checked
    assert identity.compare_birth_dates(born, "1980").outcome == Outcome.not_checked  # unreadable


def test_a_patronymic_only_in_the_scans_is_not_a_difference():
    found = outcomes("Анна Иванова", "IVANOVA^ANNA^SERGEEVNA")
    assert found[Part.middle_name] == Outcome.not_checked
    assert outcomes("Иванова Анна Сергеевна", "IVANOVA^ANNA^SERGEEVNA")[Part.middle_name] == "match"
    assert outcomes("Иванова Анна Сергеевна", "IVANOVA^ANNA^PETROVNA")[Part.middle_name] == (
        "differs"
    )


def test_a_study_without_a_name_is_not_checked():
    assert outcomes("Анна Иванова", None) == {
        Part.family_name: Outcome.not_checked,
        Part.birth_date: Outcome.not_checked,
    }


@dataclass(frozen=True)
class Account:
    full_name: str
    date_of_birth: date | None


@dataclass(frozen=True)
class Study:
    patient_name: str | None
    patient_birth_date: str | None
    study_instance_uid: str = "1.2.3"


def test_the_case_is_flagged_when_any_study_differs_and_says_which():
    account = Account("Анна Иванова", date(1980, 3, 12))
    same = Study("IVANOVA^ANNA", "19800312", "1.1")
    other_birth = Study("IVANOVA^ANNA", "19811203", "1.2")
    unknown_birth = Study("Ivanova^Anna", None, "1.3")
    assert identity_check(account, [same, unknown_birth]).mismatch is False
    check = identity_check(account, [same, other_birth])
    assert check.mismatch is True
    assert [s.mismatch for s in check.studies] == [False, True]
    birth = next(p for p in check.studies[1].parts if p.part == "birth_date")
    assert (birth.outcome, birth.account, birth.scans) == ("differs", "19800312", "19811203")
    # Without a birth date in the account, only the names can be checked.
    assert identity_check(Account("Анна Иванова", None), [other_birth]).mismatch is False
