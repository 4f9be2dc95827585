"""Stream ``multipart/form-data`` parts into synchronous consumers without buffering them.

The request body is read in the event loop (with a stall timeout, see ``streams``); each
part's bytes are handed to the blocking ingest (boto3, pydicom) running in a worker thread,
which pulls them as it consumes them — so a 2 GB part is never held in memory or spooled to
disk in plaintext. A body that ends before its closing boundary is refused (``BadRequest``)
when its end is reached, before the last part counts as complete.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email.message import Message

from anyio import from_thread
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from portal.errors import BadRequest, InvalidInput
from portal.i18n import N_, _
from portal.intake.streams import receive_chunk

BATCH_BYTES = 1024 * 1024


FORM_DATA = "multipart/form-data"
FORM_DATA_REFUSAL = N_("Send the files as multipart/form-data in a field named 'files'.")
NOT_WELL_FORMED = N_("The upload is not well-formed multipart data.")
TRUNCATED = N_(
    "The upload ended before its closing multipart boundary, so none of it was kept. Send it again."
)
NO_STALL_LIMIT = 24 * 3600.0


@dataclass
class PartHeaders:
    field: str | None
    filename: str | None
    content_type: str | None = None


class MultipartStream:
    """Incremental parser fed from an ASGI body iterator; consumed from a worker thread.

    Parses ``multipart/form-data`` (browser uploads) or, when asked, another multipart type
    such as ``multipart/related`` (DICOMweb STOW-RS): the framing is the same (RFC 2046).
    """

    def __init__(
        self,
        content_type: str,
        body: AsyncIterator[bytes],
        *,
        media_type: str = FORM_DATA,
        refusal: str = FORM_DATA_REFUSAL,
        stall_seconds: float = NO_STALL_LIMIT,
    ) -> None:
        sent_type, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if sent_type != media_type.encode() or not boundary:
            raise InvalidInput(refusal)
        self._body = body
        self._stall_seconds = stall_seconds
        self._events: deque[tuple[str, bytes]] = deque()
        self._prefetched: list[tuple[str, bytes]] = []
        self._header_field = b""
        self._header_value = b""
        self._finished = False
        try:
            self._parser = self._new_parser(boundary)
        except FormParserError as exc:  # e.g. a boundary over python-multipart's 256 bytes
            raise BadRequest(
                _(
                    "The multipart boundary is not valid (it must be 1 to 70 characters, "
                    "RFC 2046; at most 256 are accepted)."
                )
            ) from exc

    def _new_parser(self, boundary: bytes) -> MultipartParser:
        return MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": lambda: self._events.append(("begin", b"")),
                "on_part_data": lambda data, start, end: self._events.append(
                    ("data", bytes(data[start:end]))
                ),
                "on_part_end": lambda: self._events.append(("end", b"")),
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
            },
        )

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._events.append(("header", self._header_field.lower() + b"\x00" + self._header_value))
        self._header_field = self._header_value = b""

    async def prefetch(self) -> None:
        """Parse the first batch here, in the event loop, before a worker thread is taken."""
        self._prefetched = await self._next_batch()

    async def _next_batch(self) -> list[tuple[str, bytes]]:
        """Parsed events for up to ``BATCH_BYTES`` of body; empty at the end of the body.

        Batching keeps the hand-offs between the event loop and the worker thread few (each
        costs a thread wake-up); a batch is still small enough to bound memory.
        """
        received = 0
        while received < BATCH_BYTES and not self._finished:
            chunk = await receive_chunk(self._body, self._stall_seconds)
            if chunk is None:
                self._parser.finalize()
                self._finished = True
                if self._parser.state != MultipartState.END:
                    raise BadRequest(TRUNCATED)
                break
            received += len(chunk)
            try:
                self._parser.write(chunk)
            except Exception as exc:  # python-multipart raises its own error types
                raise InvalidInput(NOT_WELL_FORMED) from exc
        batch = list(self._events)
        self._events.clear()
        return batch

    # -- worker-thread side ----------------------------------------------------------------

    def parts(self) -> Iterator[tuple[PartHeaders, Iterator[bytes]]]:
        """Each part's headers and a chunk iterator; drain one before asking for the next."""
        pending: deque[tuple[str, bytes]] = deque(self._prefetched)
        self._prefetched = []

        def next_event() -> tuple[str, bytes] | None:
            if not pending and not self._finished:
                pending.extend(from_thread.run(self._next_batch))
            return pending.popleft() if pending else None

        while (event := next_event()) is not None:
            if event[0] != "begin":
                continue
            headers: dict[str, str] = {}
            while (event := next_event()) is not None and event[0] == "header":
                name, _nul, value = event[1].partition(b"\x00")
                headers[name.decode("latin-1")] = value.decode("utf-8", errors="replace")
            first = event

            def chunks(first: tuple[str, bytes] | None = first) -> Iterator[bytes]:
                event = first
                while event is not None and event[0] == "data":
                    yield event[1]
                    event = next_event()

            yield _part_headers(headers), chunks()


def _part_headers(headers: dict[str, str]) -> PartHeaders:
    message = Message()
    message["content-disposition"] = headers.get("content-disposition", "")
    params = dict(message.get_params(header="content-disposition") or [])
    filename = message.get_filename()
    content_type = headers.get("content-type")
    return PartHeaders(field=params.get("name"), filename=filename, content_type=content_type)
