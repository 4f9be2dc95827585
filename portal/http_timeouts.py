"""uvicorn's HTTP protocol with a deadline for the request line and headers.

uvicorn 0.55 has a keep-alive timeout (idle between requests) but none for reading a
request's head: a client that opens a connection and sends half a header line, or a byte
every few seconds, keeps it forever (slowloris). This subclass of its httptools protocol
arms a timer when a connection opens and when a request begins, disarms it once the headers
are complete, and closes the connection when it fires. Bodies have their own stall timeout
in the upload routes (``portal.intake.streams``).
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

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:
            self._arm_header_timer()

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
