"""Render records for the browser: PDF pages with PDFium, photos with Pillow.

Pure: the original's plaintext (bytes or a seekable binary file) in, a PNG or JPEG that we
encoded out; no database and no storage. The browser never receives the original, so neither
its PDF plugin nor its image decoders ever parse what a patient uploaded.

The portal calls this module only inside the render workers (``portal.records.workers``):
child processes with a memory and a time limit, one call at a time each, so a hostile file
can at worst fail its own request. PDFium is not thread-safe; one thread per process is what
makes that safe here.

PDFium is only asked to lay out and rasterise: no form environment is set up, so no form
(and no JavaScript, which this PDFium build does not contain) ever runs. The guards here are
the document's page count (``MAX_PAGES``), the pixels of one rendered page
(``MAX_PAGE_PIXELS``) and of a photo (``max_pixels``); the worker adds the memory and time
limits. Pages are numbered from 1 here, as people and PDF readers number them.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pypdfium2.raw as pdfium_c  # type: ignore[import-untyped]
from PIL import Image, UnidentifiedImageError
from PIL.Image import DecompressionBombError, DecompressionBombWarning

from portal.errors import NotFound, UnsupportedMediaType
from portal.i18n import N_, format_number, gettext, ngettext
from portal.viewer.render import encode_png

PNG = "image/png"
JPEG = "image/jpeg"
MAX_PAGES = 2_000
"""A document with more pages is not shown (intake still accepts it; it can be downloaded)."""
MAX_PAGE_PIXELS = 20_000_000
"""One rendered page or photo: 20 megapixels, 60 MB as RGB (2000 x 10000 at most)."""
JPEG_QUALITY = 85
ORIENTATION = 0x0112  # the EXIF tag
Source = bytes | BinaryIO

_PROTECTED = frozenset({pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY})
# EXIF orientation -> what makes the picture upright (the table ImageOps.exif_transpose uses).
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_TURNED = frozenset({5, 6, 7, 8})  # stored on its side: width and height swap
_TRANSPARENT_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_REDUCIBLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "I", "CMYK"})  # Image.reduce takes these
REDUCE_GAP = 2.0
"""A decoded photo is first shrunk by whole factors (a cheap box filter) while it stays at
least twice the target; Lanczos does the rest (Pillow's ``reducing_gap`` of 2 or more is
indistinguishable from Lanczos alone)."""
REDUCING_GAP = 3.0


class UnreadableRecord(UnsupportedMediaType):
    """A record that cannot be drawn. It keeps its wording (an ``N_`` message and its values)
    so that a cached verdict can be said again in another reader's language (``reworded``)."""

    default_message = N_(
        "This document is damaged and cannot be shown here. Download the original to open it "
        "on your computer."
    )

    def __init__(self, message: str | None = None, **values: object) -> None:
        self.wording = message or self.default_message
        self.values = values
        super().__init__(self.reworded())

    def reworded(self) -> str:
        """The message in the current language."""
        values = {
            name: format_number(value) if isinstance(value, int) else value
            for name, value in self.values.items()
        }
        return gettext(self.wording, **values)


class ProtectedRecord(UnreadableRecord):
    default_message = N_(
        "This PDF is protected by a password, so it cannot be shown here. Download the "
        "original and open it with its password."
    )


class RecordTooLarge(UnreadableRecord):
    default_message = N_("This page is too large to show here. Download the original to open it.")


class PageNotFound(NotFound):
    default_message = N_("This document has no such page.")


@dataclass(frozen=True)
class Rendered:
    """An image we encoded, ready to send."""

    data: bytes
    media_type: str
    width: int
    height: int


def pages_message(count: int) -> str:
    return ngettext(
        "This document has %(num)s page, numbered 1 to %(num)s.",
        "This document has %(num)s pages, numbered 1 to %(num)s.",
        count,
    )


# PDF ---------------------------------------------------------------------------------------


def pdf_page_count(source: Source) -> int:
    """The number of pages of a PDF.

    Raises
    ------
    ProtectedRecord
        The PDF needs a password to open.
    UnreadableRecord
        PDFium cannot read it.
    RecordTooLarge
        It has more than ``MAX_PAGES`` pages.
    """
    with _pdf(source) as document:
        count: int = len(document)
        return count


def pdf_page_sizes(source: Source) -> list[tuple[float, float]]:
    """Each page's ``(width, height)`` in points (1/72 inch), as displayed (after /Rotate).

    Raises the errors of :func:`pdf_page_count`.
    """
    with _pdf(source) as document:
        try:
            sizes = [document.get_page_size(index) for index in range(len(document))]
        except pdfium.PdfiumError:
            raise UnreadableRecord() from None
    return [(float(width), float(height)) for width, height in sizes]


def page_pixels(width_pt: float, height_pt: float, width_px: int) -> tuple[float, int]:
    """The scale that renders a page exactly ``width_px`` wide, and the height that gives.

    Raises
    ------
    UnreadableRecord
        The page has no usable size.
    RecordTooLarge
        The rendered page would have more than ``MAX_PAGE_PIXELS`` pixels (a very long page).
    """
    if not (math.isfinite(width_pt) and math.isfinite(height_pt)) or min(width_pt, height_pt) <= 0:
        raise UnreadableRecord(N_("This page has no size, so it cannot be shown here."))
    scale = width_px / width_pt
    while math.ceil(width_pt * scale) > width_px:  # PDFium rounds the bitmap size up
        scale = math.nextafter(scale, 0.0)
    height_px = max(1, math.ceil(height_pt * scale))
    if width_px * height_px > MAX_PAGE_PIXELS:
        raise RecordTooLarge()
    return scale, height_px


def render_pdf_page(source: Source, *, page: int, width_px: int) -> Rendered:
    """Page ``page`` (from 1) of a PDF as a PNG exactly ``width_px`` wide.

    Parameters
    ----------
    source : bytes or binary file
        The PDF's plaintext; a file must be seekable and stay open during the call.
    page : int
        The page number, from 1.
    width_px : int
        The width of the image; the height follows the page's proportions.

    Returns
    -------
    Rendered
        An 8-bit PNG: greyscale when the page has no colour, else RGB. The same input gives
        the same bytes.

    Raises
    ------
    PageNotFound
        ``page`` is outside ``1..pages``.
    ProtectedRecord, UnreadableRecord, RecordTooLarge
        As :func:`pdf_page_count`, or the page cannot be drawn, or it is too large.
    """
    with _pdf(source) as document:
        count = len(document)
        if not 1 <= page <= count:
            raise PageNotFound(pages_message(count))
        pixels = _rasterise(document, page - 1, width_px)
    pixels = _grey_if_colourless(pixels)
    height, width = pixels.shape[:2]
    return Rendered(encode_png(pixels), PNG, width, height)


@contextmanager
def _pdf(source: Source) -> Iterator[Any]:
    """An open PDFium document, closed on leaving."""
    try:
        document = pdfium.PdfDocument(source)
    except pdfium.PdfiumError as exc:
        raise ProtectedRecord() if exc.err_code in _PROTECTED else UnreadableRecord() from None
    try:
        if len(document) > MAX_PAGES:
            raise RecordTooLarge(
                N_(
                    "This document has more than %(limit)s pages, too many to show here. "
                    "Download the original to open it."
                ),
                limit=MAX_PAGES,
            )
        yield document
    finally:
        document.close()  # explicitly: the worker process goes on to the next record


def _rasterise(document: Any, index: int, width_px: int) -> npt.NDArray[np.uint8]:
    pdf_page = bitmap = None
    try:
        pdf_page = document[index]
        width_pt, height_pt = pdf_page.get_size()
        scale, _ = page_pixels(float(width_pt), float(height_pt), width_px)
        # No init_forms(): no form environment, so form fields draw only their appearance
        # streams and no action or script of the document ever runs.
        bitmap = pdf_page.render(scale=scale, may_draw_forms=False, rev_byteorder=True)
        return np.array(bitmap.to_numpy(), dtype=np.uint8)  # a copy: the bitmap is freed below
    except pdfium.PdfiumError:
        raise UnreadableRecord(N_("This page is damaged and cannot be shown here.")) from None
    finally:
        for handle in (bitmap, pdf_page):
            if handle is not None:
                handle.close()


def _grey_if_colourless(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """A page of black text on white is stored as grey: a third of the samples to compress."""
    red = pixels[..., 0]
    if np.array_equal(red, pixels[..., 1]) and np.array_equal(red, pixels[..., 2]):
        return np.ascontiguousarray(red)
    return pixels


# Photos ------------------------------------------------------------------------------------


def photo_size(source: Source, *, max_pixels: int) -> tuple[int, int]:
    """A JPEG or PNG photo's ``(width, height)`` as shown upright, read from its header.

    Raises
    ------
    UnreadableRecord
        It is not a readable JPEG or PNG.
    RecordTooLarge
        It has more than ``max_pixels`` pixels (intake's limit, ``PORTAL_RECORD_MAX_PIXELS``).
    """
    with _photo(source, max_pixels) as image:
        width, height = image.size
        return (height, width) if _orientation(image) in _TURNED else (width, height)


def render_photo(source: Source, *, width_px: int, max_pixels: int) -> Rendered:
    """A photo upright, at most ``width_px`` wide (never enlarged), without its metadata.

    Parameters
    ----------
    source : bytes or binary file
        A JPEG or PNG (as accepted at intake).
    width_px : int
        The largest width wanted; the height follows. A result over ``MAX_PAGE_PIXELS`` is
        made smaller still.
    max_pixels : int
        A photo with more pixels is refused from its header, before any of it is decoded.

    Returns
    -------
    Rendered
        A JPEG for a JPEG, a PNG for a PNG, re-encoded from the decoded pixels: the EXIF
        orientation is applied, and EXIF (GPS included), ICC profile, XMP, comments and any
        bytes after the picture are left behind. Transparency is flattened onto white; 16-bit
        grey keeps its upper 8 bits. The same input gives the same bytes.

    Raises
    ------
    UnreadableRecord, RecordTooLarge
        As :func:`photo_size`, or the picture data is damaged or cut short.
    """
    with _photo(source, max_pixels) as image:
        image_format = image.format
        orientation = _orientation(image)
        turned = orientation in _TURNED
        stored_width, stored_height = image.size
        shown = (stored_height, stored_width) if turned else (stored_width, stored_height)
        width, height = fitted_size(*shown, width_px)
        target = (height, width) if turned else (width, height)  # in stored orientation
        try:
            picture = _decoded_near(image, target)
        except (OSError, ValueError, SyntaxError, DecompressionBombError):
            raise UnreadableRecord(
                N_("This photo is damaged and its picture cannot be read. Download the original.")
            ) from None
    if picture.size != target:
        picture = picture.resize(target, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
    if orientation in _UPRIGHT:
        picture = picture.transpose(_UPRIGHT[orientation])
    pixels = np.asarray(picture, dtype=np.uint8)
    if image_format == "JPEG":
        return Rendered(_encode_jpeg(pixels), JPEG, width, height)
    return Rendered(encode_png(pixels), PNG, width, height)


def _decoded_near(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """The picture as grey or RGB, already shrunk by a whole factor towards ``target``.

    A JPEG is decoded at 1/2, 1/4 or 1/8 scale while that still covers the target (``draft``):
    a 48 MP photo shown 2000 wide decodes 3 MP. A PNG must be decoded whole, but it is then
    reduced (a box filter, in place of the first steps of the final resize) before any mode
    conversion, so that no full-size copies are made after the decoded one.
    """
    image.draft(None, target)
    image.load()
    picture: Image.Image = image
    if picture.mode not in _REDUCIBLE_MODES or "transparency" in picture.info:
        picture = _displayable(picture)  # palette, 1-bit, 16-bit, colour-keyed: convert first
    factor_x = max(1, int(picture.width / target[0] / REDUCE_GAP))
    factor_y = max(1, int(picture.height / target[1] / REDUCE_GAP))
    if factor_x > 1 or factor_y > 1:
        picture = picture.reduce((factor_x, factor_y))
    return _displayable(picture)


@contextmanager
def _photo(source: Source, max_pixels: int) -> Iterator[Image.Image]:
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DecompressionBombWarning)  # we check just below
            image = Image.open(stream, formats=["JPEG", "PNG"])
    except DecompressionBombError:  # Pillow's own limit, above ours
        raise _too_many_pixels() from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise UnreadableRecord(
            N_("This photo is damaged and its picture cannot be read. Download the original.")
        ) from None
    with image:
        width, height = image.size
        if width <= 0 or height <= 0 or width * height > max_pixels:
            raise _too_many_pixels()
        yield image


def _too_many_pixels() -> RecordTooLarge:
    return RecordTooLarge(N_("This photo has too many pixels to show here. Download the original."))


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 to 8) from the header; 1 when absent or unreadable.

    Only EXIF met before the picture data counts: Pillow would decode a whole PNG to look for
    an ``eXIf`` chunk after it.
    """
    if "exif" not in image.info:
        return 1
    try:
        value = image.getexif().get(ORIENTATION, 1)
        return int(value) if value in _UPRIGHT else 1
    except Exception:  # a damaged EXIF block costs only the orientation, never the picture
        return 1


def fitted_size(width: int, height: int, width_px: int) -> tuple[int, int]:
    """The size a photo shown ``width`` x ``height`` upright is rendered at for ``width_px``:
    at most that wide, never enlarged, and within ``MAX_PAGE_PIXELS``."""
    fitted_width = min(width_px, width)
    fitted_height = max(1, round(height * fitted_width / width))
    if fitted_width * fitted_height > MAX_PAGE_PIXELS:
        shrink = math.sqrt(MAX_PAGE_PIXELS / (fitted_width * fitted_height))
        fitted_width = max(1, int(fitted_width * shrink))
        fitted_height = max(1, int(fitted_height * shrink))
    return fitted_width, fitted_height


def _displayable(image: Image.Image) -> Image.Image:
    """Decoded pixels as 8-bit grey (``L``) or RGB, transparency flattened onto white."""
    mode = image.mode
    if mode in _TRANSPARENT_MODES or "transparency" in image.info:
        rgba = image if mode == "RGBA" else image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))  # in place: no composite copies
        return flat
    if mode in {"1", "L"}:
        return image.convert("L")
    if mode.startswith("I"):  # 16-bit grey: keep the upper 8 bits (no wider copy is made)
        values = np.asarray(image)
        if values.dtype != np.uint16:
            values = np.clip(values, 0, 65535)
        return Image.fromarray((values >> 8).astype(np.uint8))
    return image.convert("RGB")


def _encode_jpeg(pixels: npt.NDArray[np.uint8]) -> bytes:
    """A new image from bare pixels: nothing of the original's ``info`` can be carried over."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()
