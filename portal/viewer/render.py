"""Render one DICOM frame to PNG: decode just that frame, apply the modality LUT and a VOI
window (or keep its colours), give it square display pixels, encode it.

Pure: no database and no storage. Frames are indexed from 0 here, like pydicom; the API
numbers them from 1, like DICOM.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID

from portal.errors import NotFound, PortalError, UnsupportedMediaType
from portal.i18n import N_, _, ngettext
from portal.intake.dicom import quiet_pydicom
from portal.viewer import geometry
from portal.viewer.windows import (
    IMAGE_DEFAULT,
    LINEAR,
    LINEAR_EXACT,
    PRESETS,
    SIGMOID,
    Window,
    WindowRequest,
    apply_window,
    auto_window,
)

MAX_FRAME_SAMPLES = 64 * 1024 * 1024  # rows x columns x samples; beyond this we do not decode
MAX_DISPLAY_SIDE = 4096  # stretching to square pixels never makes a side longer than this
PNG_COMPRESS_LEVEL = 1  # measured in bench/render.py: higher levels cost time, save little
PNG_STRATEGY = zlib.Z_RLE  # after the Sub filter, background is runs of zeros
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MONOCHROME = frozenset({"MONOCHROME1", "MONOCHROME2"})
COLOUR = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR"})
VOI_FUNCTIONS = frozenset({LINEAR, LINEAR_EXACT, SIGMOID})
# Loggers of their own, outside the "pydicom" logger quiet_pydicom silences: a failing decoder
# plugin logs its traceback there, at ERROR, for every refused frame.
_DECODER_LOGGERS = ("pydicom.pixels.decoders.base", "pydicom.pixels.utils")


class UnsupportedImage(UnsupportedMediaType):
    default_message = N_("This image cannot be shown in the browser viewer.")


class FrameNotFound(NotFound):
    default_message = N_("This image has no such frame.")


@dataclass(frozen=True)
class Frame:
    """One decoded frame and what displaying it takes; nothing of pydicom's inside."""

    pixels: npt.NDArray[Any]
    """Monochrome: stored values, ``(rows, columns)``. Colour: ``uint8`` ``(rows, columns, 3)``."""
    colour: bool
    invert: bool
    """MONOCHROME1: the lowest value is white."""
    slope: float
    intercept: float
    image_window: Window | None
    """The window the image itself suggests (``WindowCenter`` / ``WindowWidth``)."""
    voi_function: str
    padding: float | None
    aspect: tuple[float, float] | None
    """A pixel's (height, width), from its spacing or aspect ratio; ``None``: square."""
    spacing: tuple[float, float] | None
    """``(row spacing, column spacing)`` in mm."""
    edges: geometry.EdgeLabels | None


def frame_count(ds: Dataset) -> int:
    """Number of frames (``NumberOfFrames``, 1 when absent or unreadable)."""
    count = geometry.first_number(ds.get("NumberOfFrames"))
    return int(count) if count is not None and count >= 1 else 1


def transfer_syntax_supported(uid: str) -> bool:
    """Whether a decoder for this transfer syntax is installed (pylibjpeg and its plugins)."""
    try:
        return bool(get_decoder(UID(uid)).is_available)
    except (NotImplementedError, ValueError):
        return False


def transfer_syntax(ds: Dataset) -> UID:
    """The data set's transfer syntax from its file meta (empty when it has none)."""
    meta = getattr(ds, "file_meta", None)
    return UID(str(meta.get("TransferSyntaxUID", "")) if meta is not None else "")


def read_dataset(source: BinaryIO, *, header_only: bool = False) -> Dataset:
    """Parse a DICOM Part 10 file (never ``force``); ``header_only`` stops before pixel data."""
    with quiet_pydicom():
        try:
            return dcmread(source, stop_before_pixels=header_only)
        except Exception as exc:  # pydicom signals bad input with many exception types
            raise UnsupportedImage(
                _("This file could not be read as DICOM, so it cannot be shown.")
            ) from exc


def check_renderable(ds: Dataset, index: int) -> None:
    """Raise unless frame ``index`` (0-based) of ``ds`` can be decoded and shown here.

    Raises
    ------
    UnsupportedImage
        No image, a compression without an installed decoder, a colour model the viewer does
        not convert, or a frame too large to decode.
    FrameNotFound
        ``index`` is outside the image's frames.
    """
    rows = geometry.first_number(ds.get("Rows"))
    columns = geometry.first_number(ds.get("Columns"))
    if not rows or not columns:
        raise UnsupportedImage(_("This file holds no image to show."))
    count = frame_count(ds)
    if not 0 <= index < count:
        raise FrameNotFound(
            ngettext(
                "This image has %(num)s frame, numbered 1 to %(num)s.",
                "This image has %(num)s frames, numbered 1 to %(num)s.",
                count,
            )
        )
    syntax = transfer_syntax(ds)
    if not transfer_syntax_supported(syntax):
        raise UnsupportedImage(
            _(
                "This image's compression cannot be shown in the browser viewer "
                "(transfer syntax %(syntax)s).",
                syntax=syntax.name or syntax,
            )
        )
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if photometric not in MONOCHROME | COLOUR:
        raise UnsupportedImage(
            _(
                "This image's colour model (%(model)s) cannot be shown in the browser viewer.",
                model=photometric or "—",
            )
        )
    samples = geometry.first_number(ds.get("SamplesPerPixel")) or 1
    if rows * columns * samples > MAX_FRAME_SAMPLES:
        raise UnsupportedImage(_("This image is too large to show in the browser viewer."))


def decode_frame(ds: Dataset, *, index: int, source: BinaryIO | None = None) -> Frame:
    """Decode frame ``index`` (0-based) alone, with its display attributes.

    Parameters
    ----------
    ds : Dataset
        The data set; with its pixel data unless ``source`` is given.
    index : int
        The frame, from 0.
    source : file-like, optional
        The whole file, when ``ds`` was read without pixel data: only this frame's bytes are
        read from it.

    Raises
    ------
    UnsupportedImage, FrameNotFound
        See :func:`check_renderable`; also when the decoder fails on the data.
    """
    if source is not None:
        source.seek(0)
    with _quiet_decoding():  # reading attributes converts them; pydicom may warn with values
        check_renderable(ds, index)
        try:
            return _frame(ds, index, pixel_array(ds if source is None else source, index=index))
        except PortalError:
            raise
        except Exception as exc:  # each decoder plugin fails in its own way
            syntax = transfer_syntax(ds)
            raise UnsupportedImage(
                _(
                    "This image could not be decoded; the file may be damaged or use a variant "
                    "of its compression the viewer cannot read (transfer syntax %(syntax)s).",
                    syntax=syntax.name,
                )
            ) from exc


@contextmanager
def _quiet_decoding() -> Iterator[None]:
    """``quiet_pydicom``, and the pixel decoders' own loggers silenced too."""
    with quiet_pydicom():
        loggers = [logging.getLogger(name) for name in _DECODER_LOGGERS]
        were_disabled = [logger.disabled for logger in loggers]
        for logger in loggers:
            logger.disabled = True
        try:
            yield
        finally:
            for logger, was_disabled in zip(loggers, were_disabled, strict=True):
                logger.disabled = was_disabled


def _frame(ds: Dataset, index: int, pixels: npt.NDArray[Any]) -> Frame:
    photometric = str(ds.PhotometricInterpretation).strip().upper()
    shape = _Shape(
        geometry.pixel_aspect(ds, index),
        geometry.pixel_spacing(ds, index),
        geometry.edge_labels(ds, index),
    )
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(pixels, ds)
        return _colour(rgb, bits=16 if int(rgb.max(initial=0)) > 255 else 8, shape=shape)
    if pixels.ndim == 3:
        bits = int(geometry.first_number(ds.get("BitsStored")) or pixels.dtype.itemsize * 8)
        return _colour(pixels, bits=bits, shape=shape)
    slope, intercept = _rescale(ds, index)
    if "ModalityLUTSequence" in ds:  # a lookup table instead of a slope and intercept
        pixels, slope, intercept = apply_modality_lut(pixels, ds), 1.0, 0.0
    function = str(_voi_attribute(ds, index, "VOILUTFunction", LINEAR)).strip().upper()
    return Frame(
        pixels=pixels,
        colour=False,
        invert=photometric == "MONOCHROME1",
        slope=slope,
        intercept=intercept,
        image_window=_image_window(ds, index),
        voi_function=function if function in VOI_FUNCTIONS else LINEAR,
        padding=geometry.first_number(ds.get("PixelPaddingValue")),
        aspect=shape.aspect,
        spacing=shape.spacing,
        edges=shape.edges,
    )


@dataclass(frozen=True)
class _Shape:
    aspect: tuple[float, float] | None
    spacing: tuple[float, float] | None
    edges: geometry.EdgeLabels | None


def _voi_attribute(ds: Dataset, index: int, keyword: str, default: Any) -> Any:
    value = geometry.frame_attribute(ds, index, "FrameVOILUTSequence", keyword)
    return default if value is None or value == "" else value


def _rescale(ds: Dataset, index: int) -> tuple[float, float]:
    macro = "PixelValueTransformationSequence"
    slope = geometry.first_number(geometry.frame_attribute(ds, index, macro, "RescaleSlope"))
    intercept = geometry.first_number(
        geometry.frame_attribute(ds, index, macro, "RescaleIntercept")
    )
    return (slope if slope else 1.0), (intercept if intercept is not None else 0.0)


def _image_window(ds: Dataset, index: int) -> Window | None:
    center = geometry.first_number(_voi_attribute(ds, index, "WindowCenter", None))
    width = geometry.first_number(_voi_attribute(ds, index, "WindowWidth", None))
    if center is None or width is None or width <= 0:
        return None
    return Window(center, width)


def _colour(rgb: npt.NDArray[Any], *, bits: int, shape: _Shape) -> Frame:
    if rgb.dtype != np.uint8:
        rgb = (rgb >> max(0, bits - 8)).astype(np.uint8)
    return Frame(
        pixels=rgb,
        colour=True,
        invert=False,
        slope=1.0,
        intercept=0.0,
        image_window=None,
        voi_function=LINEAR,
        padding=None,
        aspect=shape.aspect,
        spacing=shape.spacing,
        edges=shape.edges,
    )


def chosen_window(frame: Frame, request: WindowRequest) -> tuple[Window, str, str]:
    """``(window, VOI function, source)`` for a monochrome frame; the source is ``request``,
    ``preset``, ``image`` (its own window) or ``auto``."""
    if request.window is not None:
        return request.window, LINEAR, "request"
    if request.preset is not None:
        preset = PRESETS[request.preset]
        if preset.window is not None:
            return preset.window, LINEAR, "preset"
        return _auto(frame), LINEAR, "auto"
    if frame.image_window is not None:
        return frame.image_window, frame.voi_function, "image"
    return _auto(frame), LINEAR, "auto"


def _auto(frame: Frame) -> Window:
    return auto_window(
        frame.pixels, slope=frame.slope, intercept=frame.intercept, padding=frame.padding
    )


def display_pixels(frame: Frame, request: WindowRequest = IMAGE_DEFAULT) -> npt.NDArray[np.uint8]:
    """The frame as 8-bit grey (windowed, MONOCHROME1 inverted) or RGB, before resampling."""
    if frame.colour:
        return frame.pixels
    window, function, _ = chosen_window(frame, request)
    grey = apply_window(
        frame.pixels,
        slope=frame.slope,
        intercept=frame.intercept,
        window=window,
        function=function,
    )
    if frame.invert:
        np.subtract(255, grey, out=grey)
    return grey


def to_png(
    frame: Frame, *, window: WindowRequest = IMAGE_DEFAULT, max_side: int | None = None
) -> bytes:
    """The frame as PNG bytes with square display pixels, at most ``max_side`` on a side."""
    shown = display_pixels(frame, window)
    rows, columns = shown.shape[:2]
    size = geometry.display_size(rows, columns, frame.aspect, limit=max_side or MAX_DISPLAY_SIDE)
    if size != (columns, rows):
        image = Image.fromarray(np.ascontiguousarray(shown))
        shown = np.asarray(image.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0))
    return encode_png(shown)


def encode_png(pixels: npt.NDArray[np.uint8]) -> bytes:
    """8-bit grey ``(rows, columns)`` or RGB ``(rows, columns, 3)`` pixels as PNG.

    Written here rather than by Pillow, whose encoder tries every filter on every row: on a
    2048 x 2048 frame that took 3 times as long (bench/render.py). Every row uses the Sub
    filter, computed at once with NumPy, then zlib at ``PNG_COMPRESS_LEVEL``. Nothing varying
    is written (no timestamp): the same pixels always give the same bytes.
    """
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    samples = np.ascontiguousarray(pixels).reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), np.uint8)
    filtered[:, 0] = 1  # Sub: each byte minus the same sample of the pixel to its left
    filtered[:, 1 : 1 + channels] = samples[:, :channels]
    np.subtract(samples[:, channels:], samples[:, :-channels], out=filtered[:, 1 + channels :])
    deflate = zlib.compressobj(PNG_COMPRESS_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS, 9, PNG_STRATEGY)
    compressed = deflate.compress(filtered.data) + deflate.flush()
    colour_type = 0 if channels == 1 else 2  # greyscale or truecolour, 8 bits per sample
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"".join(
        (PNG_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", compressed), _chunk(b"IEND"))
    )


def _chunk(kind: bytes, data: bytes = b"") -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def render_frame(
    ds: Dataset,
    *,
    index: int,
    window: WindowRequest = IMAGE_DEFAULT,
    max_side: int | None = None,
) -> bytes:
    """Decode frame ``index`` (0-based) of a data set read with its pixel data; PNG bytes."""
    return to_png(decode_frame(ds, index=index), window=window, max_side=max_side)
