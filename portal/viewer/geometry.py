"""Where a frame's attributes live, the shape of its pixels, the patient directions of its edges.

Conventions (DICOM PS3.3 C.7.6.2.1.1 and 10.7.1.3): ``PixelSpacing`` is ``[row spacing, column
spacing]``: the first value is the distance between the centres of adjacent rows (vertical,
y), the second between adjacent columns (horizontal, x). ``ImageOrientationPatient`` holds the
direction of a row (towards higher column numbers, i.e. the right edge) then of a column
(towards higher row numbers, the bottom edge) in the patient system, where +x is the
patient's left, +y posterior and +z head. Frames are never flipped: the top-left display
pixel is the first stored pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

OBLIQUE_COMPONENT = 0.25  # a direction component at least this large adds its letter
_AXES = (("L", "R"), ("P", "A"), ("H", "F"))  # letters for + and - of the patient x, y, z axes
_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}


def frame_attribute(ds: Dataset, index: int, macro: str, keyword: str) -> Any:
    """An attribute of frame ``index`` (0-based): per-frame functional group, then shared, then
    the top level of the data set (where classic single-frame images keep everything)."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = ds.get("SharedFunctionalGroupsSequence")
    groups = []
    if per_frame and index < len(per_frame):
        groups.append(per_frame[index])
    if shared:
        groups.append(shared[0])
    for group in groups:
        items = group.get(macro)
        if items:
            value = items[0].get(keyword)
            if value is not None and value != "":
                return value
    return ds.get(keyword)


def numbers(value: Any, count: int) -> tuple[float, ...] | None:
    """``count`` finite numbers from a DICOM value, else ``None``."""
    if value is None or isinstance(value, str | bytes):
        return None
    try:
        parsed = tuple(float(item) for item in value)
    except (TypeError, ValueError):
        return None
    if len(parsed) != count or not all(math.isfinite(item) for item in parsed):
        return None
    return parsed


def first_number(value: Any) -> float | None:
    """The first of a possibly multi-valued numeric attribute, if it is a finite number."""
    if value is None or value == "":
        return None
    if not isinstance(value, str | bytes | int | float):
        try:
            value = value[0]
        except (TypeError, IndexError):
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def pixel_spacing(ds: Dataset, index: int) -> tuple[float, float] | None:
    """``(row spacing, column spacing)`` in mm, from ``PixelSpacing`` (also in the pixel
    measures functional group) or, for projection images, ``ImagerPixelSpacing``."""
    for value in (
        frame_attribute(ds, index, "PixelMeasuresSequence", "PixelSpacing"),
        ds.get("ImagerPixelSpacing"),
    ):
        pair = numbers(value, 2)
        if pair is not None and pair[0] > 0 and pair[1] > 0:
            return pair[0], pair[1]
    return None


def pixel_aspect(ds: Dataset, index: int) -> tuple[float, float] | None:
    """A pixel's ``(height, width)`` in any unit: from the spacing, else ``PixelAspectRatio``
    (vertical size, horizontal size); ``None`` when unknown (taken as square)."""
    spacing = pixel_spacing(ds, index)
    if spacing is not None:
        return spacing
    ratio = numbers(ds.get("PixelAspectRatio"), 2)
    if ratio is not None and ratio[0] > 0 and ratio[1] > 0:
        return ratio[0], ratio[1]
    return None


def display_size(
    rows: int, columns: int, aspect: tuple[float, float] | None, *, limit: int
) -> tuple[int, int]:
    """``(width, height)`` giving square display pixels: the coarser axis is stretched to the
    finer one's spacing, then both are scaled down together if a side would exceed ``limit``."""
    width, height = float(columns), float(rows)
    if aspect is not None and not math.isclose(aspect[0], aspect[1], rel_tol=1e-3):
        finer = min(aspect)
        width, height = columns * aspect[1] / finer, rows * aspect[0] / finer
    shrink = min(1.0, limit / max(width, height))
    return max(1, round(width * shrink)), max(1, round(height * shrink))


@dataclass(frozen=True)
class EdgeLabels:
    """Patient directions at the edges of the displayed frame, e.g. ``R``/``L``, ``A``/``P``."""

    left: str
    right: str
    top: str
    bottom: str


def edge_labels(ds: Dataset, index: int) -> EdgeLabels | None:
    """Edge labels from ``ImageOrientationPatient`` (also in the plane orientation functional
    group), else from ``PatientOrientation`` (projection radiographs); ``None`` if neither."""
    orientation = numbers(
        frame_attribute(ds, index, "PlaneOrientationSequence", "ImageOrientationPatient"), 6
    )
    if orientation is not None:
        row, column = orientation[:3], orientation[3:]
        right, bottom = _direction(row), _direction(column)
        left = _direction(tuple(-c for c in row))
        top = _direction(tuple(-c for c in column))
        if right and bottom and left and top:
            return EdgeLabels(left=left, right=right, top=top, bottom=bottom)
        return None
    stated = ds.get("PatientOrientation")
    if stated is None or isinstance(stated, str) or len(stated) != 2:
        return None
    right, bottom = str(stated[0]).upper(), str(stated[1]).upper()
    if not right or not bottom or not set(right + bottom) <= _OPPOSITE.keys():
        return None
    return EdgeLabels(left=_opposite(right), right=right, top=_opposite(bottom), bottom=bottom)


def _direction(vector: tuple[float, ...]) -> str:
    """Letters of a direction, the largest component first: ``(0.7, 0.7, 0)`` is ``LP``."""
    ranked = sorted(range(3), key=lambda axis: -abs(vector[axis]))
    return "".join(
        _AXES[axis][0 if vector[axis] > 0 else 1]
        for axis in ranked
        if abs(vector[axis]) >= OBLIQUE_COMPONENT
    )


def _opposite(letters: str) -> str:
    return "".join(_OPPOSITE[letter] for letter in letters)
