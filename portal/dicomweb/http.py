"""What every DICOMweb route shares: the paths, content negotiation and multipart answers."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from portal.errors import NotAcceptable
from portal.i18n import _

DICOM_JSON = "application/dicom+json"
STUDY = "/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{instance}"


def root_url(request: Request, case_id: uuid.UUID) -> str:
    return f"{str(request.base_url).rstrip('/')}/api/cases/{case_id}/dicomweb"


def accepted(request: Request) -> list[tuple[str, dict[str, str]]]:
    """The Accept header as (media type, parameters), best first; a multipart range stands for
    the ``type`` of its parts. No header accepts anything."""
    ranges: list[tuple[float, int, str, dict[str, str]]] = []
    for position, item in enumerate(request.headers.get("accept", "*/*").split(",")):
        media_type, *raw = (piece.strip() for piece in item.split(";"))
        params = {}
        for piece in raw:
            name, _, value = piece.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
        try:
            quality = float(params.pop("q", "1"))
        except ValueError:
            quality = 1.0
        media_type = media_type.lower()
        if media_type == "multipart/related":
            media_type = params.pop("type", "*/*").lower()
        ranges.append((-quality, position, media_type, params))
    return [(media_type, params) for _, _, media_type, params in sorted(ranges) if media_type]


def json_answer(items: Any, warnings: Iterable[str] = ()) -> JSONResponse:
    headers = {"Warning": ", ".join(f'299 portal "{text}"' for text in warnings)}
    return JSONResponse(
        items, media_type=DICOM_JSON, headers=headers if headers["Warning"] else None
    )


def check_json(request: Request) -> None:
    wanted = {media_type for media_type, _ in accepted(request)}
    if not wanted & {"*/*", "application/*", DICOM_JSON, "application/json"}:
        raise NotAcceptable(_("This resource is given as %(media_type)s.", media_type=DICOM_JSON))


def multipart_bytes(parts: list[tuple[str, bytes]], part_type: str) -> Response:
    """A multipart/related answer of parts already in memory (frames): one body, no stream."""
    boundary = secrets.token_hex(16)
    body = bytearray()
    for content_type, data in parts:
        body += f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode()
        body += data
        body += b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    media_type = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return Response(bytes(body), media_type=media_type)


def multipart_stream(
    parts: Iterable[tuple[str, Iterable[bytes]]], part_type: str
) -> StreamingResponse:
    """A multipart/related answer streamed part by part (instances, read from storage)."""
    boundary = secrets.token_hex(16)

    def body() -> Iterator[bytes]:
        for content_type, chunks in parts:
            yield f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode()
            yield from chunks
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    media_type = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return StreamingResponse(body(), media_type=media_type)
