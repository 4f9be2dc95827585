"""Fuzz targets: each takes arbitrary bytes and calls one intake parser the way the ingest does.

A target returns normally when the parser accepts the input or refuses it with its documented
rejection (``Rejected`` for files, ``InvalidInput`` for multipart framing). Any other
exception, a hang or a crash of the interpreter is a finding. ``tests/fuzz/run.py`` drives
them with atheris; ``tests/fuzz/test_fuzz.py`` replays the seed corpora and runs each fuzzer
for a bounded time.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor

import anyio

from portal.errors import BadRequest, InvalidInput
from portal.intake.archive import ArchiveLimits, plan_zip
from portal.intake.capture import TAIL_BYTES
from portal.intake.dicom import inspect_dicom
from portal.intake.dicom_source import HeaderLimits
from portal.intake.errors import Rejected
from portal.intake.multipart import MultipartStream
from portal.intake.records import inspect_image, inspect_pdf, pdf_page_count
from portal.intake.sniff import DICOM_MAGIC, DICOM_PREAMBLE, FileKind
from portal.settings import Settings

HEAD_BYTES = 64 * 1024  # smaller than the portal's 4 MiB so that cut-off heads are explored
LIMITS = ArchiveLimits(
    max_entries=64,
    max_total_uncompressed=8 * 1024 * 1024,
    max_entry_size=4 * 1024 * 1024,
    max_ratio=200.0,
)
BOUNDARY = b"fuzzboundary"
LONG_HEADER_LIMITS = HeaderLimits(max_bytes=1024 * 1024, max_elements=20_000, max_depth=16)

RECORD_MAX_PIXELS = Settings.model_fields["record_max_pixels"].default


def _ends(data: bytes) -> tuple[bytes, bytes]:
    return data[:HEAD_BYTES], data[-TAIL_BYTES:]


def dicom_header(data: bytes) -> None:
    """``inspect_dicom`` on a file that sniffs as DICOM (preamble and ``DICM`` added if absent)."""
    if data[DICOM_PREAMBLE : DICOM_PREAMBLE + 4] != DICOM_MAGIC:
        data = bytes(DICOM_PREAMBLE) + DICOM_MAGIC + data
    head, tail = _ends(data)
    with contextlib.suppress(Rejected):
        inspect_dicom(head, tail=tail, total_size=len(data))
    # The same file with a head of 1 KiB, its header read on from the "stored" file (bounded).
    with contextlib.suppress(Rejected):
        inspect_dicom(
            data[:1024],
            tail=tail,
            total_size=len(data),
            open_body=lambda: io.BytesIO(data),
            limits=LONG_HEADER_LIMITS,
        )


def zip_reader(data: bytes) -> None:
    """``plan_zip``, then every planned entry read to its end, as the ingest reads them."""
    try:
        plan = plan_zip(io.BytesIO(data), LIMITS)
        for entry in plan.entries:
            with entry.open() as stream:
                while stream.read(64 * 1024):
                    pass
    except Rejected:
        pass


def records(data: bytes) -> None:
    """The PDF check and page count, or the JPEG/PNG check, chosen by the first byte."""
    selector, data = (data[0], data[1:]) if data else (0, b"")
    head, tail = _ends(data)
    try:
        if selector % 3 == 0:
            inspect_pdf(head, tail=tail, total_size=len(data))
            pdf_page_count(io.BytesIO(data))
        else:
            kind = FileKind.jpeg if selector % 3 == 1 else FileKind.png
            inspect_image(
                head, kind=kind, tail=tail, total_size=len(data), max_pixels=RECORD_MAX_PIXELS
            )
    except Rejected:
        pass


def multipart(data: bytes) -> None:
    """A request body through ``MultipartStream``, cut into chunks where the input says.

    The first byte picks the chunk size and, with its bit 0x40, a long boundary (200 to 455
    characters, its length from the second byte) instead of the seeds' short one. Every part
    is drained as the upload route drains it.
    """
    selector = data[0] if data else 0
    size = (selector % 64) + 1
    boundary, body = BOUNDARY.decode(), data[1:]
    if selector & 0x40 and body:
        boundary, body = (boundary * 40)[: 200 + body[0]], body[1:]

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), size):
            yield body[start : start + size]

    async def consume() -> None:
        stream = MultipartStream(f"multipart/form-data; boundary={boundary}", chunks().__aiter__())

        def drain() -> None:
            for _headers, part in stream.parts():
                for _ in part:
                    pass

        await anyio.to_thread.run_sync(drain)

    # A thread of its own: the caller's thread may already run an event loop (the suite's
    # browser fixtures do), and anyio.run refuses to nest.
    with (
        contextlib.suppress(InvalidInput, BadRequest),  # its documented refusals: 422 and 400
        ThreadPoolExecutor(max_workers=1) as loop_thread,
    ):
        loop_thread.submit(anyio.run, consume).result()


TARGETS: dict[str, Callable[[bytes], None]] = {
    "dicom": dicom_header,
    "zip": zip_reader,
    "records": records,
    "multipart": multipart,
}
