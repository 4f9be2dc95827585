"""Checking a de-identified instance against the actions table, attribute by attribute.

The expectations are written from the standard's definitions (PS3.15 E.1.1), not from the
engine: X is gone, Z is present and empty, D is present with a value that is not the
original, U is a ``2.25.`` UID that is not the original and is the same for the same original
everywhere, K is unchanged, C holds only words of the original and none that identify, and a
shifted date is the original moved by the expected number of days.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from portal.deid import Action
from portal.deid.profile import ActionTable

Path = tuple[tuple[int, int], ...]  # (sequence tag, item index) from the top


@dataclass
class Report:
    counts: Counter[str] = field(default_factory=Counter)
    uid_map: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return sum(self.counts.values())


def values(element: DataElement | object) -> list[str]:
    """The values of an element (or of a value as ``Dataset.get`` gives it), as text."""
    value = element.value if isinstance(element, DataElement) else element
    if value is None or value == "":
        return []
    items = value if isinstance(value, (list, tuple, MultiValue)) else [value]
    return [str(item) for item in items]


def is_empty(element: DataElement) -> bool:
    if element.VR == "SQ":
        return len(element.value) == 0
    return element.value is None or element.value in ("", b"", [])


def find(dataset: Dataset, path: Path, tag: int) -> DataElement | None:
    current = dataset
    for sequence_tag, index in path:
        if sequence_tag not in current or len(current[sequence_tag].value) <= index:
            return None
        current = current[sequence_tag].value[index]
    return current.get(tag)


def table_elements(
    dataset: Dataset, table: ActionTable, path: Path = ()
) -> Iterator[tuple[Path, DataElement, Action]]:
    """Every attribute of ``dataset`` the table lists, at any depth, with its action.

    Items of a sequence that is removed or emptied are not visited (their parent's check
    covers them); nor is anything in a private attribute.
    """
    for element in dataset:
        if element.tag.is_private:
            continue
        action = table.action_for(element.tag)
        if action is not None:
            yield path, element, action
        if element.VR == "SQ" and action not in (Action.REMOVE, Action.EMPTY):
            if action is Action.DUMMY and (element.keyword or "").endswith("CodeSequence"):
                continue
            for index, item in enumerate(element.value):
                yield from table_elements(item, table, (*path, (int(element.tag), index)))


def shifted(value: str, vr: str, days: int) -> str:
    """An independent computation of a full DA or DT moved by ``days``."""
    day = date(int(value[:4]), int(value[4:6]), int(value[6:8])) + timedelta(days=days)
    return day.strftime("%Y%m%d") + (value[8:] if vr == "DT" else "")


def check(
    original: Dataset,
    output: Dataset,
    table: ActionTable,
    *,
    days: int,
    identifying: list[str],
    reference: str | None = None,
    report: Report | None = None,
) -> Report:
    """Check every table attribute of ``original`` in ``output``; return what was checked.

    ``reference``: the top-level Patient's Name and Patient ID (Z and Z/D) must hold it, as
    they are set to the case's reference after the profile emptied them.
    """
    report = report or Report()
    for path, element, action in table_elements(original, table):
        result = find(output, path, element.tag)
        where = f"{element.tag} {element.keyword or ''} at {path}: {action.name}"
        if reference is not None and not path and element.keyword in ("PatientName", "PatientID"):
            if result is None or str(result.value) != reference:
                report.failures.append(f"{where}: not the case reference")
            report.counts["REFERENCE"] += 1
            continue
        problem = _problem(element, result, action, table, days, identifying, report)
        if problem:
            report.failures.append(f"{where}: {problem}")
        report.counts[action.name] += 1
    return report


def _problem(
    element: DataElement,
    result: DataElement | None,
    action: Action,
    table: ActionTable,
    days: int,
    identifying: list[str],
    report: Report,
) -> str | None:
    if action is Action.REMOVE:
        return None if result is None else "still present"
    if result is None:
        fell_back = action in (Action.CLEAN, Action.SHIFT_DATE)
        removable = table.basic_action(element.tag) is Action.REMOVE
        return None if fell_back and removable else "missing"
    if action is Action.EMPTY:
        return None if is_empty(result) else f"not empty: {result.value!r}"
    if action is Action.KEEP:
        if element.VR == "SQ":
            return None if len(result.value) == len(element.value) else "items lost"
        return None if result.value == element.value else "changed"
    if action is Action.REPLACE_UID:
        return _check_uids(element, result, report)
    if action is Action.DUMMY:
        return _check_dummy(element, result)
    if action is Action.SHIFT_DATE:
        return _check_shift(element, result, days)
    return _check_clean(element, result, table, identifying)


def _check_uids(element: DataElement, result: DataElement, report: Report) -> str | None:
    if element.VR == "SQ":
        return None if len(result.value) == len(element.value) else "items lost"
    if element.VR != "UI":
        return None if is_empty(result) else "not emptied"
    for old, new in zip(values(element), values(result), strict=True):
        if not new.startswith("2.25.") or new == old or len(new) > 64:
            return f"{old} -> {new}"
        if report.uid_map.setdefault(old, new) != new:
            return f"{old} mapped to {new} here and {report.uid_map[old]} elsewhere"
    return None


def _check_dummy(element: DataElement, result: DataElement) -> str | None:
    if element.VR == "SQ":
        return None if len(result.value) >= 1 or len(element.value) == 0 else "items lost"
    if is_empty(result):
        return "empty where a dummy is due"
    original = values(element)
    if original and values(result) == original and original != ["ANONYMIZED"]:
        return f"original value kept: {result.value!r}"
    return None


def _check_shift(element: DataElement, result: DataElement, days: int) -> str | None:
    if element.VR == "TM":
        return None if result.value == element.value else "a time changed"
    if element.VR not in ("DA", "DT"):
        return None
    expected = []
    for value in values(element):
        text = value.strip().replace(".", "") if element.VR == "DA" else value.strip()
        if element.VR == "DT" and len(text) in (4, 6) and text.isdigit():
            expected.append(None)  # a partial DT: moved at its own precision (test_dates.py)
        elif len(text) < 8 or not text[:8].isdigit():
            return None if is_empty(result) else "unreadable date kept"
        else:
            expected.append(shifted(text, element.VR, days))
    got = values(result)
    if len(got) != len(expected):
        return f"{got} != {expected}"
    for new, old, want in zip(got, values(element), expected, strict=True):
        if (want is None and (len(new) != len(old.strip()) or new == old)) or (
            want is not None and new != want
        ):
            return f"{got} != {expected}"
    return None


def _check_clean(
    element: DataElement, result: DataElement, table: ActionTable, identifying: list[str]
) -> str | None:
    if element.VR == "SQ":
        return None if len(result.value) == len(element.value) else "items lost"
    if is_empty(result) or values(result) == ["ANONYMIZED"]:
        return None  # fell back to the Basic Profile's Z or D
    words = {word.lower() for value in values(element) for word in value.split()}
    for value in values(result):
        for word in value.split():
            if word.lower() not in words and not any(word.lower() in w for w in words):
                return f"{word!r} is not from the original"
            if any(word.lower() == token.lower() for token in identifying):
                return f"identifying {word!r} kept"
    return None
