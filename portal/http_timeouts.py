"""uvicorn's HTTP protocol with a deadline for the request line and headers.

uvicorn 0.55 has a keep-alive timeout (idle between requests) but none for reading a
request's head: a client that opens a connection and sends half a header line, or a byte
every few seconds, keeps it forever (slowloris). This subclass of its httptools protocol
arms a timer when a connection opens and when a request begins, disarms it once the headers
are complete, and closes the connection when it fires. It also refuses a head over
``MAX_HEAD_BYTES``, which the httptools protocol does not bound. Bodies have their own stall
timeout in the upload routes (``portal.intake.streams``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

log = logging.getLogger(__name__)


DEFAULT_HEADER_TIMEOUT = 10.0
MAX_HEAD_BYTES = 64 * 1024
"""A request line and headers larger than this are refused (431). uvicorn's h11 protocol has
``h11_max_incomplete_event_size`` (16 KiB by default); its httptools protocol has no limit."""
TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-length: 0\r\nconnection: close\r\n\r\n"
)


class PortalConfig(uvicorn.Config):
    """uvicorn's configuration plus the request-head deadline (pickled to worker processes)."""

    def __init__(self, app: Any, *, header_timeout: float, **options: Any) -> None:
        super().__init__(app, http=HeaderTimeoutProtocol, **options)
        self.header_timeout = header_timeout


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """Closes a connection whose request head does not arrive within ``header_timeout``."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = float(getattr(config, "header_timeout", DEFAULT_HEADER_TIMEOUT))
        self._header_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._header_timer is None:  # no head in progress (the chunk completed it)
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self._disarm_header_timer()
            self.transport.write(TOO_LARGE)
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's head is timed from its first byte (on_message_begin); until
        # then uvicorn's keep-alive timeout closes an idle connection.

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._head_bytes = 0
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            log.info("closing a connection whose request headers did not arrive in time")
            self.transport.close()
