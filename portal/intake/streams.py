"""Request bodies of uploads: read on the event loop, handed to a worker thread in batches.

A body is read here, in the event loop, with a stall timeout on every read: a client that
stops sending ties up its own connection and nothing else, and is refused after
``PORTAL_UPLOAD_STALL_SECONDS``. The first batch is read before any worker thread is taken
(``prefetch``), so a client that sends headers and a few bytes never holds a thread; later
batches are pulled by the worker as it consumes them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import anyio
from anyio import from_thread
from starlette.requests import ClientDisconnect

from portal.errors import RequestTimeout
from portal.i18n import ngettext

BATCH_BYTES = 1024 * 1024
log = logging.getLogger(__name__)


class UploadStalled(RequestTimeout):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            ngettext(
                "No data arrived for %(num)s second, so the upload was stopped and nothing of "
                "the unfinished file was kept. Send it again.",
                "No data arrived for %(num)s seconds, so the upload was stopped and nothing of "
                "the unfinished file was kept. Send it again.",
                round(seconds),
            )
        )


async def receive_chunk(body: AsyncIterator[bytes], stall_seconds: float) -> bytes | None:
    """The next chunk of the body, None at its end; ``UploadStalled`` when nothing comes.

    A client that hangs up raises Starlette's ``ClientDisconnect`` (logged once, at INFO,
    by the app's handler).
    """
    try:
        with anyio.fail_after(stall_seconds):
            return await body.__anext__()
    except StopAsyncIteration:
        return None
    except TimeoutError:
        log.info("upload stalled", extra={"stall_seconds": stall_seconds})
        raise UploadStalled(stall_seconds) from None


class BodyReader:
    """Iterates the body in the worker thread; a dropped connection simply ends it early."""

    def __init__(self, body: AsyncIterator[bytes], *, stall_seconds: float) -> None:
        self._body = body
        self._stall_seconds = stall_seconds
        self._first: bytes | None = None
        self.disconnected = False
        self._ended = False

    async def prefetch(self) -> None:
        """Read the first batch here, in the event loop, before a worker thread is taken."""
        self._first = await self._next()

    async def _next(self) -> bytes | None:
        """Up to ``BATCH_BYTES`` of body (fewer thread hand-offs); None at the end."""
        parts: list[bytes] = []
        size = 0
        while size < BATCH_BYTES:
            try:
                chunk = await receive_chunk(self._body, self._stall_seconds)
            except ClientDisconnect:
                log.info("upload client disconnected")
                self.disconnected = True
                break
            if chunk is None:
                self._ended = True
                break
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts) if parts else None

    def __iter__(self) -> Iterator[bytes]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        while not (self._ended or self.disconnected):
            chunk = from_thread.run(self._next)
            if chunk:
                yield chunk
