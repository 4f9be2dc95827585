"""Raw-socket HTTP clients that misbehave on purpose: slow, stalled or cut-short requests."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

BOUNDARY = "portal-test-boundary"


def form_part(filename: str, data: bytes, field: str = "files") -> bytes:
    """One ``multipart/form-data`` part (boundary line, headers, data) without its end."""
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode() + data


def form_body(*files: tuple[str, bytes], closed: bool = True) -> bytes:
    """A multipart body of these files; ``closed=False`` leaves out the closing boundary."""
    body = b"\r\n".join(form_part(name, data) for name, data in files)
    return body + (f"\r\n--{BOUNDARY}--\r\n".encode() if closed else b"")


def open_request(
    url: str,
    method: str,
    path: str,
    headers: dict[str, str],
    *,
    content_length: int,
    first_bytes: bytes = b"",
) -> socket.socket:
    """Send a request head promising ``content_length`` bytes and only ``first_bytes`` of them."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port))
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {content_length}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + first_bytes)
    return sock


def multipart_headers(token: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
    }


def read_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], dict]:  # type: ignore[type-arg]
    """Status, headers and JSON body of the answer on ``sock`` (the server closes or it ends)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in data and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, json.loads(rest[:length]) if length else {}


def closed_within(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the server closed ``sock`` (reading and discarding), None if it did not."""
    started = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started
