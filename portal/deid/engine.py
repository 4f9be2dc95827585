"""De-identify one DICOM instance for a blind review (PS3.15 Annex E, Basic Profile + options).

The instance is copied, never changed in place; the copy is walked once, sequences included,
and every attribute gets the action :func:`portal.deid.profile.action_table` gives its tag.
What the table does not list is kept, except private attributes and group lengths (removed),
unknown attributes we cannot read (UN, removed), dates (shifted like every date) and UIDs
that are not the standard's own (replaced like every UID, so references stay whole). Pixel
data and the transfer syntax are never touched: burned-in text is flagged by
:func:`portal.deid.burned_in.burned_in_risk`, not removed here.
"""

from __future__ import annotations

import copy
import dataclasses
import io
from collections.abc import Callable
from dataclasses import dataclass

from pydicom import dcmread, dcmwrite
from pydicom.datadict import dictionary_has_tag, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from portal.deid.dates import shift_da, shift_dt
from portal.deid.descriptors import IdentifyingText, identifying_text
from portal.deid.keys import date_offset_days, new_uid, purpose_key
from portal.deid.profile import Action, ActionTable, DeidOptions, action_table

STANDARD_UID_ROOT = "1.2.840.10008."
KEPT_UID_SUFFIXES = ("ClassUID", "SyntaxUID", "CodingSchemeUID", "CreatorUID", "ResourceUID")
"""Unlisted UIDs that name a kind of thing (a SOP class, a coding scheme), not an instance."""

MAX_REFERENCE_LENGTH = 64  # PatientID is LO

DUMMY_TEXT = "ANONYMIZED"
_DUMMIES: dict[str, object] = {
    "AE": "ANONYMOUS",
    "AS": "000Y",
    "CS": DUMMY_TEXT,
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "DS": "0",
    "IS": "0",
    "UR": "http://anonymized.invalid",
    **dict.fromkeys(("LO", "LT", "SH", "ST", "UC", "UT", "PN"), DUMMY_TEXT),
    **dict.fromkeys(("FL", "FD", "SL", "SS", "UL", "US", "SV", "UV"), 0),
    **dict.fromkeys(("OB", "OD", "OF", "OL", "OV", "OW", "UN"), bytes(8)),
}
_KEPT_META = (
    "FileMetaInformationVersion",
    "MediaStorageSOPClassUID",
    "TransferSyntaxUID",
)


FREE_TEXT_VRS = frozenset({"LT", "ST", "UT", "UC", "PN"})
"""Inside a sequence the table says to dummy (D), these are dummied too when the table does
not list them: a Content Sequence's Text Value (0040,A160) is nowhere in Table E.1-1, because
the profile expects the whole content to be replaced; we keep its structure (codes, numbers,
references, shifted dates) and replace its words."""


@dataclass(frozen=True)
class _Walk:
    table: ActionTable
    uid_key: bytes
    days: int
    identifying: IdentifyingText
    in_dummy: bool = False


def deidentify(
    dataset: Dataset,
    *,
    case_key: bytes,
    reference: str,
    options: DeidOptions = DeidOptions(),
) -> Dataset:
    """A de-identified copy of ``dataset``; ``dataset`` itself is not changed.

    Parameters
    ----------
    dataset : Dataset
        One instance as read by pydicom (with its ``file_meta`` when it came from a file).
    case_key : bytes
        The case's secret (at least 16 bytes): every instance of the case de-identified with it
        gets the same new UIDs for the same old ones and the same date shift.
    reference : str
        What the reviewer may know the patient by (the case's reference): Patient's Name and
        Patient ID are set to it.
    options : DeidOptions
        The profile's options; all three by default.

    Returns
    -------
    Dataset
        The copy, with ``file_meta`` whose Media Storage SOP Instance UID is the new SOP
        Instance UID.

    Raises
    ------
    ValueError
        A case key that is too short, or a reference that cannot be a Patient ID.
    """
    _check_reference(reference)
    walk = _Walk(
        table=action_table(options),
        uid_key=purpose_key(case_key, "uid"),
        days=date_offset_days(case_key),
        identifying=identifying_text(dataset),
    )
    output = _copy(dataset)
    _walk(output, walk)
    _mark(output, reference=reference, options=options)
    output.file_meta = _file_meta(dataset, output, walk)
    return output


def deidentify_file(
    data: bytes, *, case_key: bytes, reference: str, options: DeidOptions = DeidOptions()
) -> bytes:
    """A DICOM file's bytes, de-identified (see :func:`deidentify`), as a DICOM file.

    Raises ValueError for data without SOP Class and Instance UIDs (not a storable instance).
    """
    original = dcmread(io.BytesIO(data), force=True)
    if "SOPClassUID" not in original or "SOPInstanceUID" not in original:
        raise ValueError("not a DICOM instance: no SOP Class UID or SOP Instance UID")
    output = deidentify(original, case_key=case_key, reference=reference, options=options)
    buffer = io.BytesIO()
    dcmwrite(buffer, output, enforce_file_format=True)
    return buffer.getvalue()


def _check_reference(reference: str) -> None:
    if not reference.strip() or len(reference) > MAX_REFERENCE_LENGTH:
        raise ValueError("the case reference must be 1 to 64 characters")
    if "\\" in reference or not reference.isprintable():
        raise ValueError("the case reference must be printable and hold no backslash")


def _copy(dataset: Dataset) -> Dataset:
    """A copy sharing only immutable values (the pixel data's bytes are not duplicated)."""
    output = Dataset()
    for element in dataset:
        duplicate = copy.copy(element)
        if element.VR == "SQ":
            duplicate.value = Sequence([_copy(item) for item in element.value])
        elif not isinstance(element.value, (bytes, str, int, float)):
            duplicate.value = copy.deepcopy(element.value)
        output.add(duplicate)
    return output


def _walk(dataset: Dataset, walk: _Walk) -> None:
    for element in list(dataset):
        tag = element.tag
        if tag.is_private or tag.element == 0 or _unreadable(element):
            del dataset[tag]
            continue
        action = walk.table.action_for(tag)
        if action is None:
            _unlisted(dataset, element, walk)
        else:
            _apply(dataset, element, action, walk)


def _unreadable(element: DataElement) -> bool:
    """A standard-looking attribute no dictionary knows, read as UN: we cannot look inside."""
    return element.VR == "UN" and not dictionary_has_tag(element.tag)


def _apply(dataset: Dataset, element: DataElement, action: Action, walk: _Walk) -> None:
    handlers: dict[Action, Callable[[Dataset, DataElement, _Walk], None]] = {
        Action.REMOVE: _remove,
        Action.EMPTY: _empty,
        Action.DUMMY: _dummy,
        Action.REPLACE_UID: _replace_uid,
        Action.KEEP: _keep,
        Action.CLEAN: _clean,
        Action.SHIFT_DATE: _shift,
    }
    handlers[action](dataset, element, walk)


def _remove(dataset: Dataset, element: DataElement, walk: _Walk) -> None:
    del dataset[element.tag]


def _empty(dataset: Dataset, element: DataElement, walk: _Walk) -> None:
    element.value = Sequence() if element.VR == "SQ" else None


def _keep(dataset: Dataset, element: DataElement, walk: _Walk) -> None:
    if element.VR == "SQ":  # K: "unchanged for non-sequence attributes, cleaned for sequences"
        for item in element.value:
            _walk(item, walk)


def _dummy(dataset: Dataset, element: DataElement, walk: _Walk) -> None:
    if element.VR == "SQ":
        if (keyword_for_tag(element.tag) or "").endswith("CodeSequence"):
            element.value = Sequence([_dummy_code()])  # the code itself names the person
        else:
            _keep(dataset, element, dataclasses.replace(walk, in_dummy=True))
    elif element.VR == "UI":
        originals = _values(element) or [f"dummy {element.tag}"]
        _set_values(element, [new_uid(uid, uid_key=walk.uid_key) for uid in originals])
    elif element.VR in _DUMMIES:
        element.value = _DUMMIES[element.VR]
    else:
        _empty(dataset, element, walk)


def _dummy_code() -> Dataset:
    item = Dataset()
    item.CodeValue = "0"
    item.CodingSchemeDesignator = "99PORTAL"
    item.CodeMeaning = "Removed"
    return item


def _replace_uid(dataset: Dataset, element: DataElement, walk: _Walk) -> None:
    if element.VR == "SQ":
        _keep(dataset, element, walk)
    elif element.VR == "UI":
        _set_values(element, [new_uid(uid, uid_key=walk.uid_key) for uid in _values(element)])
    else:
        _empty(dataset, element, walk)


def _clean(dataset: Dataset, element: DataElement, walk: _Walk) -> None:
    if element.VR == "SQ":
        _keep(dataset, element, walk)
        return
    cleaned = [text for text in map(walk.identifying.clean, _values(element)) if text]
    if cleaned and element.VR in {"SH", "LO", "CS", "UC"}:
        _set_values(element, cleaned)
    else:
        _apply(dataset, element, walk.table.basic_action(element.tag), walk)


def _shift(dataset: Dataset, element: DataElement, walk: _Walk) -> None:
    shifters = {"DA": shift_da, "DT": shift_dt}
    shifter = shifters.get(element.VR)
    if shifter is None:
        if element.VR != "TM":  # whole days leave a time of day as it is
            _apply(dataset, element, walk.table.basic_action(element.tag), walk)
        return
    moved = [shifter(value, walk.days) for value in _values(element)]
    if any(value is None for value in moved):
        element.value = None  # a date we cannot read cannot be shifted: it does not leave
    else:
        _set_values(element, [value for value in moved if value is not None])


def _unlisted(dataset: Dataset, element: DataElement, walk: _Walk) -> None:
    if element.VR == "SQ":
        _keep(dataset, element, walk)
    elif walk.in_dummy and element.VR in FREE_TEXT_VRS:
        _dummy(dataset, element, walk)
    elif element.VR in {"DA", "DT"} and walk.table.options.retain_modified_dates:
        _shift(dataset, element, walk)
    elif element.VR == "UI" and not _names_a_kind(element):
        values = _values(element)
        replaced = [uid if _standard(uid) else new_uid(uid, uid_key=walk.uid_key) for uid in values]
        _set_values(element, replaced)


def _names_a_kind(element: DataElement) -> bool:
    return (keyword_for_tag(element.tag) or "").endswith(KEPT_UID_SUFFIXES)


def _standard(uid: str) -> bool:
    return uid.startswith(STANDARD_UID_ROOT)


def _values(element: DataElement) -> list[str]:
    return _listed(element.value)


def _listed(value: object) -> list[str]:
    if value is None or value == "":
        return []
    items = value if isinstance(value, (list, tuple, MultiValue)) else [value]
    return [str(item) for item in items]


def _set_values(element: DataElement, values: list[str]) -> None:
    element.value = values[0] if len(values) == 1 else (values or None)


def _mark(dataset: Dataset, *, reference: str, options: DeidOptions) -> None:
    """Say what was done (PS3.15 E.1.1 and E.3.6) and who the patient now is."""
    dataset.PatientName = reference
    dataset.PatientID = reference
    dataset.PatientIdentityRemoved = "YES"
    dataset.LongitudinalTemporalInformationModified = (
        "MODIFIED" if options.retain_modified_dates else "REMOVED"
    )
    methods = _listed(dataset.get("DeidentificationMethod"))
    dataset.DeidentificationMethod = methods + [
        text for text in method_texts(options) if text not in methods
    ]
    sequence = dataset.get("DeidentificationMethodCodeSequence") or Sequence()
    present = {(item.get("CodingSchemeDesignator"), item.get("CodeValue")) for item in sequence}
    for code in method_codes(options):
        if (code.scheme_designator, code.value) not in present:
            item = Dataset()
            item.CodeValue = code.value
            item.CodingSchemeDesignator = code.scheme_designator
            item.CodeMeaning = code.meaning
            sequence.append(item)
    dataset.DeidentificationMethodCodeSequence = sequence


def method_codes(options: DeidOptions) -> list[Code]:
    """CID 7050 codes of the profile and the options applied (meanings as pydicom has them)."""
    chosen = [codes.DCM.BasicApplicationConfidentialityProfile]
    if options.retain_modified_dates:
        chosen.append(codes.DCM.RetainLongitudinalTemporalInformationModifiedDatesOption)
    if options.clean_descriptors:
        chosen.append(codes.DCM.CleanDescriptorsOption)
    if options.retain_device_identity:
        chosen.append(codes.DCM.RetainDeviceIdentityOption)
    return chosen


def method_texts(options: DeidOptions) -> list[str]:
    """Deidentification Method (LO, each value at most 64 characters)."""
    return [str(code.meaning)[:64] for code in method_codes(options)]


def _file_meta(original: Dataset, output: Dataset, walk: _Walk) -> FileMetaDataset:
    meta = FileMetaDataset()
    source = getattr(original, "file_meta", None) or FileMetaDataset()
    for keyword in _KEPT_META:
        if keyword in source:
            setattr(meta, keyword, source[keyword].value)
    if "SOPInstanceUID" in output:
        meta.MediaStorageSOPInstanceUID = output.SOPInstanceUID
    elif "MediaStorageSOPInstanceUID" in source:
        meta.MediaStorageSOPInstanceUID = UID(
            new_uid(str(source.MediaStorageSOPInstanceUID), uid_key=walk.uid_key)
        )
    if "SOPClassUID" in output and "MediaStorageSOPClassUID" not in meta:
        meta.MediaStorageSOPClassUID = output.SOPClassUID
    if "TransferSyntaxUID" not in meta:
        implicit, _little = getattr(original, "original_encoding", (False, True))
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    return meta
