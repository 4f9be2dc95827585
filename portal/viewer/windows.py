"""VOI windowing: presets, what the viewer asked for, the automatic window, and the mapping of
modality values to 8-bit grey levels (DICOM PS3.3 C.11.2.1.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from portal.errors import InvalidInput
from portal.i18n import N_, _

AUTO = "auto"
AUTO_LOW_PERCENTILE, AUTO_HIGH_PERCENTILE = 1.0, 99.0
AUTO_SAMPLES = 1 << 18  # percentiles from at most this many pixels: fast on a 2k x 2k image
LINEAR, LINEAR_EXACT, SIGMOID = "LINEAR", "LINEAR_EXACT", "SIGMOID"


class InvalidWindow(InvalidInput):
    default_message = N_("The window is not valid.")


@dataclass(frozen=True)
class Window:
    """A VOI window in modality units (Hounsfield units for CT)."""

    center: float
    width: float


@dataclass(frozen=True)
class Preset:
    name: str
    label: str
    window: Window | None
    """``None`` for ``auto``: computed from each frame's own pixels."""


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(AUTO, N_("Automatic (1st-99th percentile)"), None),
        Preset("soft_tissue", N_("Soft tissue"), Window(40, 400)),
        Preset("brain", N_("Brain"), Window(40, 80)),
        Preset("bone", N_("Bone"), Window(400, 1800)),
        Preset("lung", N_("Lung"), Window(-600, 1500)),
    )
}
HOUNSFIELD_MODALITIES = frozenset({"CT"})


def presets_for(modality: str | None) -> list[Preset]:
    """The presets worth offering for a modality: the Hounsfield ones only for CT."""
    if modality in HOUNSFIELD_MODALITIES:
        return list(PRESETS.values())
    return [PRESETS[AUTO]]


@dataclass(frozen=True)
class WindowRequest:
    """How to window a frame: an explicit window, a named preset, or (neither) the image's own."""

    window: Window | None = None
    preset: str | None = None


IMAGE_DEFAULT = WindowRequest()


def window_request(
    *, preset: str | None, center: float | None, width: float | None
) -> WindowRequest:
    """Validate the viewer's window choice.

    Raises
    ------
    InvalidWindow
        A preset together with numbers, half a window, a non-finite number, a width below 1,
        or an unknown preset.
    """
    if preset is not None and (center is not None or width is not None):
        raise InvalidWindow(_("Choose either a preset or a center and width, not both."))
    if preset is not None:
        if preset not in PRESETS:
            raise InvalidWindow(
                _("Unknown window preset. Choose one of: %(presets)s.", presets=", ".join(PRESETS))
            )
        return WindowRequest(preset=preset)
    if center is None and width is None:
        return IMAGE_DEFAULT
    if center is None or width is None:
        raise InvalidWindow(_("Give both the window center and the window width."))
    if not (math.isfinite(center) and math.isfinite(width)):
        raise InvalidWindow(_("The window center and width must be finite numbers."))
    if width < 1:
        raise InvalidWindow(_("The window width must be at least 1."))
    return WindowRequest(window=Window(center, width))


def auto_window(
    stored: npt.NDArray[np.generic],
    *,
    slope: float,
    intercept: float,
    padding: float | None = None,
) -> Window:
    """A window spanning the 1st to 99th percentile of a frame's modality values.

    Percentiles come from an evenly strided sample (deterministic), without the pixel padding
    value, which marks pixels outside the scanned field.
    """
    flat = stored.reshape(-1)
    sample = flat[:: max(1, flat.size // AUTO_SAMPLES)]
    if padding is not None:
        kept = sample[sample != padding]
        sample = kept if kept.size else sample
    low, high = np.percentile(
        sample.astype(np.float64), [AUTO_LOW_PERCENTILE, AUTO_HIGH_PERCENTILE]
    )
    low, high = sorted((float(low) * slope + intercept, float(high) * slope + intercept))
    # The linear function's 0 and 255 fall at center - 0.5 -/+ (width - 1) / 2: low and high.
    return Window(center=(low + high) / 2 + 0.5, width=high - low + 1)


def apply_window(
    stored: npt.NDArray[np.generic],
    *,
    slope: float,
    intercept: float,
    window: Window,
    function: str = LINEAR,
) -> npt.NDArray[np.uint8]:
    """Stored values through the rescale and the VOI function to grey levels 0-255.

    The rescale and a linear window are folded into one multiply-add over ``float32``.
    """
    center, width = window.center, window.width
    if function == SIGMOID:
        values = _modality_values(stored, slope=slope, intercept=intercept)
        values -= np.float32(center)
        values *= np.float32(-4.0 / width)
        with np.errstate(over="ignore"):  # far below the center: exp overflows, grey is 0
            np.exp(values, out=values)
        values += 1
        np.divide(255.0, values, out=values)
        values += 0.5
        return values.astype(np.uint8)
    if function == LINEAR_EXACT:
        scale = slope / width
        offset = (intercept - center) / width + 0.5
    elif width <= 1:  # the standard's formula degenerates to a threshold at center - 0.5
        values = _modality_values(stored, slope=slope, intercept=intercept)
        return np.where(values > center - 0.5, 255, 0).astype(np.uint8)
    else:
        scale = slope / (width - 1)
        offset = (intercept - (center - 0.5)) / (width - 1) + 0.5
    grey = stored.astype(np.float32)
    grey *= np.float32(scale * 255)
    grey += np.float32(offset * 255 + 0.5)  # + 0.5: the cast below truncates; this rounds
    np.clip(grey, 0, 255, out=grey)
    return grey.astype(np.uint8)


def _modality_values(
    stored: npt.NDArray[np.generic], *, slope: float, intercept: float
) -> npt.NDArray[np.float32]:
    values = stored.astype(np.float32)
    values *= np.float32(slope)
    values += np.float32(intercept)
    return values
