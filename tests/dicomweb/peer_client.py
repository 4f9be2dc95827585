"""The HTTP client that runs inside the peer's network namespace.

Run as ``ip netns exec NS python -m tests.dicomweb.peer_client REQUESTS RESULTS``: reads a JSON
list of requests (``method``, ``url``, optional ``headers`` and ``body_file``) and writes a JSON
list of answers (``status``, ``headers`` with lower-case names, ``body`` in base64), one per
request, in order. With ``--wait URL`` it first polls that address until it answers 200.
Nothing here knows about Orthanc: it only forwards requests to an address on loopback.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx


def answer(client: httpx.Client, request: dict[str, Any]) -> dict[str, Any]:
    """One request, its body streamed from a file when it has one."""
    body_file = request.get("body_file")
    headers = dict(request.get("headers", {}))
    if body_file:
        headers.setdefault("Content-Length", str(Path(body_file).stat().st_size))
    response = client.request(
        request.get("method", "GET"),
        on_loopback(request["url"]),
        headers=headers,
        content=_chunks(Path(body_file)) if body_file else None,
    )
    answered: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        key = name.lower()
        answered[key] = f"{answered[key]}, {value}" if key in answered else value
    return {
        "status": response.status_code,
        "headers": answered,
        "body": base64.b64encode(response.content).decode("ascii"),
    }


def on_loopback(url: str) -> str:
    """The URL itself, refused unless it names this namespace's loopback address."""
    if httpx.URL(url).host not in {"127.0.0.1", "localhost"}:
        raise ValueError(f"the peer client only talks to loopback, not {url}")
    return url


def _chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(size):
            yield chunk


def wait_until_up(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    sys.exit(f"{url} did not answer within {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("requests", type=Path, nargs="?")
    parser.add_argument("results", type=Path, nargs="?")
    parser.add_argument("--wait", metavar="URL", help="poll this address until it answers 200")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    if args.wait:
        wait_until_up(on_loopback(args.wait), args.timeout)
    if args.requests is None:
        return
    requests = json.loads(args.requests.read_text())
    with httpx.Client(timeout=300) as client:
        results = [answer(client, request) for request in requests]
    args.results.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
