"""Check documents and photos of paper records: PDF, JPEG and PNG, from their head and tail."""

from __future__ import annotations

import io
import warnings
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError
from PIL.Image import DecompressionBombError

from portal.i18n import _, format_number
from portal.intake.errors import Rejected
from portal.intake.sniff import FileKind

MAX_PAGES_TO_COUNT = 10_000
_PDF_TRAILER_SLACK = b" \t\r\n\x00\x0c"
_JPEG_EOI = b"\xff\xd9"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_IMAGE_FORMATS = {FileKind.jpeg: "JPEG", FileKind.png: "PNG"}


def inspect_pdf(head: bytes, *, tail: bytes, total_size: int) -> None:
    """Check that a PDF starts with its header and ends with its end-of-file marker.

    Parameters
    ----------
    head : bytes
        The first bytes of the file.
    tail : bytes
        The last bytes of the file (64, or fewer when the file is that small).
    total_size : int
        The size of the whole file in bytes.

    Raises
    ------
    Rejected
        ``malformed_pdf`` when the ``%PDF-`` header is missing, or when ``%%EOF`` is not at the
        end (only whitespace and NUL bytes may follow it): the file is cut short or is not a
        PDF.
    """
    if not head.startswith(b"%PDF-"):
        raise Rejected("malformed_pdf", _("This file is not a valid PDF document."))
    if total_size < len(b"%PDF-%%EOF") or not tail.rstrip(_PDF_TRAILER_SLACK).endswith(b"%%EOF"):
        raise Rejected(
            "malformed_pdf",
            _(
                "This PDF is incomplete or damaged: it does not end properly. "
                "Please upload it again."
            ),
        )


def pdf_page_count(fp: BinaryIO | io.RawIOBase) -> int | None:
    """Count the pages of a PDF, cheaply, or give up.

    Parameters
    ----------
    fp : BinaryIO or io.RawIOBase
        A seekable reader positioned anywhere; pypdf reads the cross-reference table from the
        end and the page tree, not the page contents.

    Returns
    -------
    int or None
        The number of pages, or ``None`` when the PDF cannot be read, is encrypted, or claims
        more pages than is plausible. Never raises.
    """
    from pypdf import PdfReader  # imported late: only PDFs need it

    # A raw reader (the storage layer's) gets a buffer: pypdf makes many small reads.
    buffered: io.BufferedReader[io.RawIOBase] | None = None
    stream: BinaryIO
    if isinstance(fp, io.RawIOBase):
        buffered = stream = io.BufferedReader(fp)
    else:
        stream = fp
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = PdfReader(stream, strict=False)
            if reader.is_encrypted:
                return None
            pages = len(reader.pages)
    except Exception:  # pypdf raises many types on damaged files; a count is only a nicety
        return None
    finally:
        if buffered is not None:
            buffered.detach()  # leave closing the caller's reader to the caller
    return pages if 0 < pages <= MAX_PAGES_TO_COUNT else None


def inspect_image(
    head: bytes, *, kind: FileKind, tail: bytes, total_size: int, max_pixels: int
) -> tuple[int, int]:
    """Read a JPEG or PNG photo's dimensions from its header and check that it is complete.

    Parameters
    ----------
    head : bytes
        The first bytes of the file; Pillow reads only the header from them.
    kind : FileKind
        ``FileKind.jpeg`` or ``FileKind.png``, as found by :func:`portal.intake.sniff.sniff`.
    tail : bytes
        The last bytes of the file (64, or fewer when the file is that small).
    total_size : int
        The size of the whole file in bytes.
    max_pixels : int
        The most pixels a photo may have (``PORTAL_RECORD_MAX_PIXELS``): enough for a photo
        of a paper report, so that no accepted photo needs gigabytes to be shown.

    Returns
    -------
    tuple of int
        ``(width, height)`` in pixels.

    Raises
    ------
    Rejected
        ``image_too_large`` when it has more than ``max_pixels`` pixels; ``malformed_image``
        when the header cannot be read, the format does not match ``kind``, or the file does
        not end with its end marker (JPEG ``FFD9`` within the last 64 bytes, PNG ``IEND`` as
        the last chunk).
    """
    if kind not in _IMAGE_FORMATS:
        raise ValueError(f"not an image kind: {kind}")
    width, height = _dimensions(head, _IMAGE_FORMATS[kind], max_pixels)
    if width <= 0 or height <= 0:
        raise Rejected(
            "malformed_image", _("This photo is damaged and its picture cannot be read.")
        )
    if width * height > max_pixels:
        raise _too_many_pixels(max_pixels)
    if kind is FileKind.png and not tail.endswith(_PNG_IEND):
        raise Rejected(
            "malformed_image",
            _(
                "This PNG image is incomplete or damaged: it does not end properly. Please upload "
                "it again."
            ),
        )
    # Trailing bytes after the end marker are tolerated within the last 64 bytes (padding);
    # a photo with a video appended (a "motion photo") does not end with the marker at all.
    if kind is FileKind.jpeg and (total_size < 4 or _JPEG_EOI not in tail):
        raise Rejected(
            "malformed_image",
            _(
                "This photo is incomplete, or has extra data after the picture as motion photos "
                "do. Please send it again as a regular photo or a screenshot."
            ),
        )
    return width, height


def _dimensions(head: bytes, image_format: str, max_pixels: int) -> tuple[int, int]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns of possible decompression bombs
            with Image.open(io.BytesIO(head), formats=[image_format]) as image:
                width, height = image.size
    except DecompressionBombError as exc:  # Pillow's own, slightly lower, pixel limit
        raise _too_many_pixels(max_pixels) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise Rejected(
            "malformed_image", _("This photo is damaged and its picture cannot be read.")
        ) from exc
    return int(width), int(height)


def _too_many_pixels(max_pixels: int) -> Rejected:
    megapixels = max_pixels // 1_000_000
    return Rejected(
        "image_too_large",
        _(
            "This image has too many pixels to accept (more than %(megapixels)s megapixels). "
            "Please send a smaller photo: your phone's usual camera setting or a screenshot is "
            "enough to read a paper report.",
            megapixels=format_number(megapixels),
        ),
    )
