"""WADO-RS frames: the pixel data of single frames, read segment by segment (PS3.18 10.4.1.1.3).

Native (uncompressed) frames are a computed byte range of the object; compressed frames are
found through the encapsulated pixel data's offset table or item headers. Either way only the
segments holding that frame are fetched and decrypted, never the whole object. A frame asked
for uncompressed but stored compressed is decoded (pylibjpeg) and sent as native pixels.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

import numpy as np
from pydicom import encaps
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
)

from portal.dicomweb.retrieve import HEADER_WINDOW, Located, open_stored, read_header
from portal.errors import BadRequest, NotAcceptable, NotFound, UnsupportedMediaType
from portal.i18n import _, ngettext
from portal.viewer import render
from portal.viewer.cache import BoundedCache
from storage.vault import Vault

FRAME_WINDOW = 64 * 1024
_UNCUT = frozenset({DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian})
"""Syntaxes whose frames are not byte ranges of the file (compressed whole, or byte-swapped)."""
UNDEFINED = 0xFFFFFFFF

MEDIA_TYPES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "application/octet-stream",  # RLE Lossless
}
"""Media type of a frame in each compressed transfer syntax (PS3.18 Table 8.7.3-2)."""


@dataclass(frozen=True)
class FrameLayout:
    """Where an instance's frames are: what the frame reader needs, kept between requests."""

    transfer_syntax: str
    frames: int
    value_at: int
    """Offset of the pixel data value (after the element's header)."""
    frame_bytes: int | None
    """Bytes per native frame; ``None`` for encapsulated pixel data."""
    header: Dataset | None = None
    """The data set without pixel data, when it had to be read (decoding needs it)."""


def parse_frame_list(text: str) -> list[int]:
    """``"1,3,5"`` → ``[1, 3, 5]`` (numbered from 1); ``InvalidInput`` for anything else."""
    numbers = []
    for part in text.split(","):
        if not part.strip().isdigit() or int(part) < 1:
            raise BadRequest(_("Frames are listed as numbers from 1, separated by commas."))
        numbers.append(int(part))
    if len(numbers) > 10_000:
        raise BadRequest(_("Ask for at most 10,000 frames at a time."))
    return numbers


def layout(vault: Vault, wrapped: bytes, located: Located) -> FrameLayout:
    """Where the instance's frames are: from the index when it knows (the pixel data's offset
    was recorded at upload), else from the instance's header, read from storage."""
    known = _indexed_layout(located)
    return known if known is not None else _read_layout(vault, wrapped, located)


def _indexed_layout(located: Located) -> FrameLayout | None:
    row = located.instance
    syntax = row.transfer_syntax_uid
    if row.pixel_data_offset is None or syntax in _UNCUT:
        return None
    if UID(syntax).is_encapsulated:
        return FrameLayout(syntax, row.number_of_frames, row.pixel_data_offset, None)
    sizes = (row.rows, row.columns, row.samples_per_pixel or 1, row.bits_allocated)
    if None in sizes or (row.bits_allocated or 0) % 8:
        return None
    rows, columns, samples, bits = (int(size or 0) for size in sizes)
    frame_bytes = rows * columns * samples * bits // 8
    return FrameLayout(syntax, row.number_of_frames, row.pixel_data_offset, frame_bytes)


def _read_layout(vault: Vault, wrapped: bytes, located: Located) -> FrameLayout:
    with open_stored(vault, wrapped, located, HEADER_WINDOW) as source:
        ds, pixel_at = read_header(source)
        if pixel_at >= located.stored.size:
            raise NotFound(_("This instance has no pixel data."))
        source.seek(pixel_at)
        head = source.read(12)
    syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", "")))
    implicit = syntax == "1.2.840.10008.1.2"
    if implicit:
        length, value_at = struct.unpack_from("<L", head, 4)[0], pixel_at + 8
    else:
        length, value_at = struct.unpack_from("<L", head, 8)[0], pixel_at + 12
    frames = render.frame_count(ds)
    if syntax.is_encapsulated:
        if length != UNDEFINED:
            raise NotFound(_("This instance's compressed pixel data is malformed."))
        return FrameLayout(syntax, frames, value_at, None, ds)
    rows, columns = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    samples, bits = int(ds.get("SamplesPerPixel", 1)), int(ds.get("BitsAllocated", 0))
    if bits % 8 or not rows or not columns:
        raise UnsupportedMediaType(
            _("Frames of this instance cannot be cut out of its pixel data.")
        )
    return FrameLayout(syntax, frames, value_at, rows * columns * samples * bits // 8, ds)


def stored_frame(
    vault: Vault, wrapped: bytes, located: Located, where: FrameLayout, n: int
) -> bytes:
    """Frame ``n`` (from 1) in the stored transfer syntax: native bytes or one compressed frame."""
    if not 1 <= n <= where.frames:
        raise NotFound(
            ngettext(
                "This instance has %(num)s frame, numbered 1 to %(num)s.",
                "This instance has %(num)s frames, numbered 1 to %(num)s.",
                where.frames,
            )
        )
    if where.transfer_syntax in _UNCUT:
        raise UnsupportedMediaType(
            _("Frames of this transfer syntax are not served; use /rendered.")
        )
    if where.frame_bytes is not None:
        start = where.value_at + (n - 1) * where.frame_bytes
        return vault.read_range(
            case_id=str(located.stored.case_id),
            wrapped_key=wrapped,
            object_key=located.stored.object_key,
            start=start,
            end=start + where.frame_bytes,
        )
    with open_stored(vault, wrapped, located, FRAME_WINDOW) as source:
        source.seek(where.value_at)
        return encaps.get_frame(source, n - 1, number_of_frames=where.frames)


def native_frame(
    vault: Vault, wrapped: bytes, located: Located, where: FrameLayout, n: int
) -> bytes:
    """Frame ``n`` as native little-endian pixels, decoded when it is stored compressed."""
    if where.frame_bytes is not None:
        return stored_frame(vault, wrapped, located, where, n)
    compressed = stored_frame(vault, wrapped, located, where, n)
    header = where.header
    if header is None:
        with open_stored(vault, wrapped, located, HEADER_WINDOW) as source:
            header, _ = read_header(source)
    frame = render.decode_frame(_single_frame(header, compressed), index=0)
    pixels = np.ascontiguousarray(frame.pixels)
    bits = int(header.get("BitsAllocated", 8))
    dtype = pixels.dtype.newbyteorder("<")
    if bits == 16 and pixels.dtype.itemsize != 2:
        dtype = np.dtype("<i2" if pixels.dtype.kind == "i" else "<u2")
    return pixels.astype(dtype, copy=False).tobytes()


def _single_frame(header: Dataset, compressed: bytes) -> Dataset:
    """A data set with the header and one compressed frame, for the decoder."""
    ds = Dataset()
    ds.update(header)
    ds.file_meta = header.file_meta
    ds.NumberOfFrames = 1
    ds.PixelData = encaps.encapsulate([compressed])
    ds["PixelData"].VR = "OB"
    return ds


FrameCache = BoundedCache[tuple[uuid.UUID, int, bool], bytes]
"""Frames by (stored object, frame number, decoded to native): plaintext, in memory only."""


def cached_frame(
    cache: FrameCache,
    vault: Vault,
    wrapped: bytes,
    located: Located,
    n: int,
    *,
    native: bool,
) -> bytes:
    """Frame ``n`` as :func:`stored_frame` or :func:`native_frame` gives it, kept in ``cache``.

    The caller has already checked access to the instance: a hit skips only the storage read.
    """
    key = (located.stored.id, n, native)
    data = cache.get(key)
    if data is None:
        where = layout(vault, wrapped, located)
        read = native_frame if native else stored_frame
        data = read(vault, wrapped, located, where, n)
        cache.put(key, data, len(data))
    return data


def media_type_of(syntax: str) -> str:
    """The media type a frame of ``syntax`` is sent as."""
    if not UID(syntax).is_encapsulated:
        return "application/octet-stream"
    return MEDIA_TYPES.get(syntax, "application/octet-stream")


def wants_native(accept: list[tuple[str, dict[str, str]]], syntax: str) -> bool:
    """Whether the client's Accept asks for native frames rather than the stored encoding.

    ``application/octet-stream`` with ``transfer-syntax=*`` (what OHIF asks) or the frame's
    own media type takes the frame as stored; ``application/octet-stream`` alone, or with
    Explicit VR Little Endian, takes native pixels (decoded if need be). Raises
    ``NotAcceptable`` (406) when it accepts neither.
    """
    stored_type = media_type_of(syntax)
    for media_type, params in accept:
        wanted = params.get("transfer-syntax")
        if media_type in {"*/*", "application/*"} and wanted in {None, "*"}:
            return False
        if media_type in {stored_type, "application/octet-stream"} and wanted in {"*", syntax}:
            return False
        if media_type == "application/octet-stream" and wanted in {None, ExplicitVRLittleEndian}:
            return bool(UID(syntax).is_encapsulated)
    raise NotAcceptable(
        _(
            "These frames are stored as %(media_type)s (transfer syntax %(syntax)s); ask for "
            "that, for application/octet-stream with transfer-syntax=*, or for uncompressed "
            "application/octet-stream.",
            media_type=stored_type,
            syntax=syntax,
        )
    )


def part_type(accept: list[tuple[str, dict[str, str]]], syntax: str, *, native: bool) -> str:
    """The Content-Type of each frame part: the media type asked for, with the syntax sent."""
    if native or not UID(syntax).is_encapsulated:
        return f"application/octet-stream; transfer-syntax={ExplicitVRLittleEndian}"
    own = media_type_of(syntax)
    asked = {media_type for media_type, _ in accept}
    chosen = own if own in asked else "application/octet-stream"
    return f"{chosen}; transfer-syntax={syntax}"
