"""Attribute-by-attribute comparison of two DICOM JSON objects (PS3.18 Annex F).

Only what the standard lets two correct servers answer differently is normalised away:

- ``vr``: OB, OW and UN stand for one another (bulk data may be sent as either, and a VR that
  is not known is UN, PS3.5 6.2.2); an attribute with two VRs in PS3.6 ("US or SS") may have
  either; a private attribute may be UN.
- Bulk data (F.2.6, F.2.7): a value sent as ``BulkDataURI`` or ``InlineBinary`` on one side and
  as either (or ``Value``) on the other is compared for presence only; two ``InlineBinary``
  values are compared byte for byte. ``BulkDataURI`` addresses belong to each server.
- Retrieve URL (0008,1190): each server's own address; the resource path from ``studies/`` on
  is compared.
- IS and DS: JSON numbers or numeric strings, compared as decimals ("1", 1 and "1.0" agree);
  FL as 32-bit floats.
- Padding: trailing spaces (and a trailing NUL in UI), insignificant in PS3.5 6.2.
- Empty values: no ``Value``, ``"Value": []`` and ``[null]`` all say "zero length".
- PN (F.2.2): component groups as an object; empty groups and trailing ``^`` are dropped.
  A PN sent as a bare string is reported, not normalised.
- Modalities in Study and SOP Classes in Study: sets, the order is not defined.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.tag import Tag
from pydicom.valuerep import VR

Kind = Literal["missing in ours", "missing in theirs", "vr", "value"]

BULK_VRS = frozenset({"OB", "OW", "UN"})
UNORDERED = frozenset({"00080061", "00080062"})  # ModalitiesInStudy, SOPClassesInStudy
RETRIEVE_URL = "00081190"
VRS = frozenset(str(vr) for vr in VR if " " not in str(vr))  # PS3.5 Table 6.2-1
STRIPPED_BOTH_ENDS = frozenset({"AE", "CS", "DS", "IS", "LO", "SH", "DA", "TM"})


@dataclass(frozen=True)
class Difference:
    tag: str
    kind: Kind
    text: str


def against_reference(
    answer: dict[str, Any], reference: dict[str, Any], keys: Mapping[str, str]
) -> list[Difference]:
    """How a server's answer departs from what it should be: ``keys`` maps tag to its type.

    A key of type R or U must be present (empty when unknown); every key the reference has
    must agree; a key the reference lacks may be sent only without a value (zero length).
    """
    missing = [
        Difference(tag, "missing in ours", f"{keyword(tag)} ({tag}): required, not returned")
        for tag, kind in sorted(keys.items())
        if kind in {"R", "U"} and tag not in answer and tag not in reference
    ]
    found = [
        difference
        for difference in attribute_differences(
            answer, reference, set(keys), labels=("the answer", "the reference")
        )
        if difference.kind != "missing in theirs" or _has_value(answer[difference.tag])
    ]
    return sorted(missing + found, key=lambda difference: difference.tag)


def _has_value(attribute: dict[str, Any]) -> bool:
    values = attribute.get("Value") or []
    return _binary(attribute) or any(value not in (None, "") for value in values)


def compare_dicom_json(
    ours: dict[str, Any], theirs: dict[str, Any], required: set[str]
) -> list[str]:
    """Human-readable differences between two DICOM JSON objects for the ``required`` tags."""
    return [difference.text for difference in attribute_differences(ours, theirs, required)]


def attribute_differences(
    ours: dict[str, Any],
    theirs: dict[str, Any],
    required: set[str] | frozenset[str],
    where: str = "",
    labels: tuple[str, str] = ("ours", "theirs"),
) -> list[Difference]:
    """Each required tag that one side lacks, or whose VR or value differs (see the module).

    ``labels`` name the two sides in the messages.
    """
    found: list[Difference] = []
    for tag in sorted(required):
        name = f"{where}{keyword(tag)} ({tag})"
        mine, other = ours.get(tag), theirs.get(tag)
        if mine is None and other is None:
            continue
        if mine is None or other is None:
            kind: Kind = "missing in ours" if mine is None else "missing in theirs"
            absent, holder = labels if mine is None else labels[::-1]
            present: dict[str, Any] = other or mine or {}
            text = f"{name}: missing in {absent} ({holder} has {_show(present)})"
            found.append(Difference(tag, kind, text))
            continue
        found.extend(_attribute(tag, name, mine, other, labels))
    return found


def malformed(obj: dict[str, Any], where: str = "") -> list[str]:
    """Where a DICOM JSON object breaks the rules of PS3.18 F.2.2, which no normalising hides.

    Tags are eight upper-case hex digits in ascending order; each attribute has a known
    ``vr`` and at most one of ``Value``, ``BulkDataURI`` and ``InlineBinary``; a PN value is
    an object holding only non-empty component groups; sequence items follow the same rules.
    """
    problems: list[str] = []
    tags = list(obj)
    if tags != sorted(tags):
        problems.append(f"{where}attributes are not in ascending tag order")
    for tag, attribute in obj.items():
        name = f"{where}{tag}"
        if len(tag) != 8 or tag != tag.upper() or any(c not in "0123456789ABCDEF" for c in tag):
            problems.append(f"{name}: not an eight-digit upper-case hex tag")
            continue
        if attribute.get("vr") not in VRS:
            problems.append(f"{name}: vr {attribute.get('vr')!r} is not a DICOM VR")
        if sum(key in attribute for key in ("Value", "BulkDataURI", "InlineBinary")) > 1:
            problems.append(f"{name}: more than one of Value, BulkDataURI, InlineBinary")
        for value in attribute.get("Value") or []:
            if attribute.get("vr") == "PN" and value is not None:
                problems.extend(_malformed_name(name, value))
            if attribute.get("vr") == "SQ":
                problems.extend(malformed(value or {}, f"{name} > "))
    return problems


def _malformed_name(name: str, value: Any) -> list[str]:
    if not isinstance(value, dict):
        return [f"{name}: PN value {value!r} is not an object of component groups"]
    groups = {"Alphabetic", "Ideographic", "Phonetic"}
    problems = [f"{name}: PN has an unknown group {key!r}" for key in value if key not in groups]
    problems += [f"{name}: PN group {key} is empty" for key, text in value.items() if text == ""]
    return problems


def keyword(tag: str) -> str:
    """The attribute's keyword, for messages."""
    if _private(tag):
        return "private"
    return keyword_for_tag(int(tag, 16)) or "unknown"


def _attribute(
    tag: str, name: str, ours: dict[str, Any], theirs: dict[str, Any], labels: tuple[str, str]
) -> list[Difference]:
    vr_ours, vr_theirs = ours.get("vr"), theirs.get("vr")
    if not _vr_equivalent(tag, vr_ours, vr_theirs):
        return [
            Difference(
                tag, "vr", f"{name}: vr {vr_ours} in {labels[0]}, {vr_theirs} in {labels[1]}"
            )
        ]
    vr = str(vr_ours)
    if _binary(ours) or _binary(theirs):
        both_inline = "InlineBinary" in ours and "InlineBinary" in theirs
        if both_inline and base64.b64decode(ours["InlineBinary"]) != base64.b64decode(
            theirs["InlineBinary"]
        ):
            return [Difference(tag, "value", f"{name}: InlineBinary bytes differ")]
        return []
    if vr == "SQ":
        return _sequence(tag, name, ours.get("Value") or [], theirs.get("Value") or [], labels)
    mine, other = _normalised(tag, vr, ours), _normalised(tag, vr, theirs)
    if mine != other:
        return [
            Difference(
                tag,
                "value",
                f"{name}: {_show(ours)} in {labels[0]}, {_show(theirs)} in {labels[1]}",
            )
        ]
    return []


def _sequence(
    tag: str, name: str, ours: list[Any], theirs: list[Any], labels: tuple[str, str]
) -> list[Difference]:
    if len(ours) != len(theirs):
        return [
            Difference(
                tag,
                "value",
                f"{name}: {len(ours)} items in {labels[0]}, {len(theirs)} in {labels[1]}",
            )
        ]
    found: list[Difference] = []
    for number, (mine, other) in enumerate(zip(ours, theirs, strict=True), start=1):
        inner = set(mine or {}) | set(other or {})
        for item in attribute_differences(
            mine or {}, other or {}, inner, f"{name} item {number} > ", labels
        ):
            found.append(Difference(tag, item.kind, item.text))
    return found


def _vr_equivalent(tag: str, ours: object, theirs: object) -> bool:
    if ours == theirs:
        return True
    pair = {ours, theirs}
    if pair <= BULK_VRS or (_private(tag) and "UN" in pair):
        return True
    try:
        choices = set(dictionary_VR(Tag(int(tag, 16))).split(" or "))
    except KeyError:
        return False
    return pair <= choices


def _private(tag: str) -> bool:
    return int(tag[:4], 16) % 2 == 1


def _binary(attribute: dict[str, Any]) -> bool:
    return "BulkDataURI" in attribute or "InlineBinary" in attribute


def _normalised(tag: str, vr: str, attribute: dict[str, Any]) -> object:
    values = ["" if value is None else value for value in attribute.get("Value") or []]
    if all(value == "" for value in values):
        values = []
    result = [_value(tag, vr, value) for value in values]
    return frozenset(result) if tag in UNORDERED else tuple(result)


def _value(tag: str, vr: str, value: Any) -> object:
    if vr == "PN":
        if not isinstance(value, dict):
            return ("PN sent as a bare string, not an object", value)
        groups = ("Alphabetic", "Ideographic", "Phonetic")
        trimmed = {g: str(value.get(g, "")).rstrip(" ").rstrip("^") for g in groups}
        return tuple((g, text) for g, text in trimmed.items() if text)
    if vr in {"IS", "DS"}:
        try:
            return Decimal(str(value).strip())
        except InvalidOperation:
            return ("not a number", value)
    if vr == "FL" and isinstance(value, int | float):
        return struct.unpack("<f", struct.pack("<f", float(value)))[0]
    if isinstance(value, str):
        if tag == RETRIEVE_URL:
            return value[value.find("studies/") :] if "studies/" in value else value
        if vr == "UI":
            return value.rstrip("\0 ")
        return value.strip(" ") if vr in STRIPPED_BOTH_ENDS else value.rstrip(" ")
    return value


def _show(attribute: dict[str, Any]) -> str:
    for key in ("Value", "BulkDataURI", "InlineBinary"):
        if key in attribute:
            text = repr(attribute[key])
            return f"{attribute.get('vr')} {key} {text[:120]}{'…' if len(text) > 120 else ''}"
    return f"{attribute.get('vr')} with no value"
