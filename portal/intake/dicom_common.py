"""What the DICOM header checks (``dicom.py``) and pixel data checks (``pixeldata.py``) share.

The parsed data set and where reading stopped, how elements are encoded, how attribute values
are read, and the wording of the refusals both give.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from portal.i18n import N_, _
from portal.intake.errors import Rejected

LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT"}

MALFORMED = N_("This DICOM file is damaged and cannot be read.")
TRUNCATED = N_(
    "This file is incomplete: it ends before all of its image data. Please upload it again."
)


@dataclass(frozen=True)
class Parsed:
    dataset: Dataset
    data: bytes  # the bytes the data set was read from (the head, or the inflated data set)
    stop: int  # where reading stopped in ``data``: the pixel data element, or the end
    end: int  # where the file ends, in the same coordinates as ``stop``


def cut(whole_file: bool) -> Rejected:
    if whole_file:
        return Rejected("truncated", _("This file is incomplete: it ends inside its DICOM header."))
    return Rejected(
        "dicom_header_too_large",
        _("This DICOM file's header is larger than we can check. Please contact us to send it."),
    )


def endian(dataset: Dataset) -> str:
    return "<" if dataset.original_encoding[1] else ">"


def text(ds: Dataset, keyword: str) -> str | None:
    value: Any = ds.get(keyword)
    if value is None:
        return None
    if isinstance(value, MultiValue):
        value = "\\".join(str(item) for item in value)
    stripped = str(value).strip(" \x00")
    return stripped or None


def integer(ds: Dataset, keyword: str) -> int | None:
    value: Any = ds.get(keyword)
    if isinstance(value, MultiValue):
        value = value[0] if value else None
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def frames(ds: Dataset) -> int:
    count = integer(ds, "NumberOfFrames")
    return count if count is not None and count > 0 else 1
