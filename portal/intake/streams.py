"""Pull an ASGI request body from a worker thread, chunk by chunk, as the consumer reads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from anyio import from_thread
from starlette.requests import ClientDisconnect

BATCH_BYTES = 1024 * 1024


class BodyReader:
    """Iterates the body in the worker thread; a dropped connection simply ends it early."""

    def __init__(self, body: AsyncIterator[bytes]) -> None:
        self._body = body
        self.disconnected = False

    async def _next(self) -> bytes | None:
        """Up to ``BATCH_BYTES`` of body (fewer thread hand-offs); None at the end."""
        parts: list[bytes] = []
        size = 0
        while size < BATCH_BYTES:
            try:
                chunk = await self._body.__anext__()
            except StopAsyncIteration:
                break
            except ClientDisconnect:
                self.disconnected = True
                break
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts) if parts else None

    def __iter__(self) -> Iterator[bytes]:
        while (chunk := from_thread.run(self._next)) is not None:
            if chunk:
                yield chunk
