"""Slow and stalled clients on a real server: they tie up their own connections, nothing else.

The figures the stalled-uploads test prints (``-s``) are the ones docs/uploads.md quotes.
"""

from __future__ import annotations

import base64
import math
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from portal import runner
from portal.app import create_app
from portal.settings import Settings
from storage.embedded import EmbeddedS3
from tests.fixtures.app import PASSWORD, make_settings
from tests.fixtures.http_api import RemotePatient, create_case, register_patient
from tests.fixtures.live import LiveServer
from tests.fixtures.logs import SensitiveValues
from tests.portal import samples
from tests.portal.raw_http import closed_within, form_part, multipart_headers, open_request
from tests.services import free_port_block, wait_for

ACCOUNTS = 15  # 4 stalled uploads each: the per-account cap, so none is refused
MULTIPART_PER_ACCOUNT = 3
TUS_PER_ACCOUNT = 1
STALLED = ACCOUNTS * (MULTIPART_PER_ACCOUNT + TUS_PER_ACCOUNT)


@pytest.fixture
def settings(tmp_path: Path, database_url: str, seaweed: EmbeddedS3) -> Settings:
    # Long enough that every stalled upload is still open while the others are timed.
    return make_settings(tmp_path, database_url, seaweed, upload_stall_seconds=60)


def _patient(url: str, sensitive: SensitiveValues) -> RemotePatient:
    patient = register_patient(url, PASSWORD, full_name="Stalling Patient")
    sensitive.add(patient.email, patient.token)
    return patient


def _stalled_multipart(url: str, patient: RemotePatient, case_id: str) -> socket.socket:
    return open_request(
        url,
        "POST",
        f"/api/cases/{case_id}/files",
        multipart_headers(patient.token),
        content_length=10_000_000,
        first_bytes=form_part("ct.dcm", samples.dicom("CT_small.dcm")[:2000]),
    )


def _tus_upload(url: str, patient: RemotePatient, case_id: str) -> str:
    """A new resumable upload's path (created before anything stalls)."""
    meta = ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in (("case_id", case_id), ("filename", "ct.dcm"))
    )
    created = httpx.post(
        f"{url}/api/uploads",
        headers={
            **patient.headers,
            "Tus-Resumable": "1.0.0",
            "Upload-Length": "10000000",
            "Upload-Metadata": meta,
        },
        timeout=10,
    )
    assert created.status_code == 201, created.text
    return str(created.headers["location"])


def _stalled_tus_patch(url: str, patient: RemotePatient, location: str) -> socket.socket:
    return open_request(
        url,
        "PATCH",
        location,
        {
            **patient.headers,
            "Tus-Resumable": "1.0.0",
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": "0",
        },
        content_length=10_000_000,
        first_bytes=b"x" * 500,
    )


def _timed(call: Callable[[], httpx.Response], expected: int) -> float:
    started = time.monotonic()
    try:
        response = call()
    except httpx.TimeoutException:
        return math.inf
    assert response.status_code == expected, response.text
    return time.monotonic() - started


@pytest.mark.slow
def test_stalled_uploads_do_not_hold_up_health_sign_in_or_other_uploads(
    live: LiveServer, app: FastAPI, sensitive: SensitiveValues
):
    url = live.url
    patients = [_patient(url, sensitive) for _ in range(ACCOUNTS)]
    other = _patient(url, sensitive)
    other_case = create_case(url, other.headers)
    # The first ingest of each kind in a process imports and connects what it needs (the DICOM
    # index, the image decoders): not what this test measures.
    warm = httpx.post(
        f"{url}/api/cases/{other_case}/files",
        files=[
            ("files", ("warm.png", samples.png())),
            ("files", ("warm.dcm", samples.ct_series(1)[0])),
        ],
        headers=other.headers,
        timeout=30,
    )
    assert warm.status_code == 200 and len(warm.json()["accepted"]) == 2, warm.text
    cases = [create_case(url, patient.headers) for patient in patients]
    tus_uploads = [_tus_upload(url, p, case_id) for p, case_id in zip(patients, cases, strict=True)]
    stalled: list[socket.socket] = []
    try:
        for patient, case_id, location in zip(patients, cases, tus_uploads, strict=True):
            stalled += [
                _stalled_multipart(url, patient, case_id) for _ in range(MULTIPART_PER_ACCOUNT)
            ]
            stalled.append(_stalled_tus_patch(url, patient, location))

        admitted = wait_for(lambda: _open_uploads(app) == STALLED, timeout=15)
        health = _timed(lambda: httpx.get(f"{url}/healthz", timeout=5), 200)
        sign_in = _timed(
            lambda: httpx.post(
                f"{url}/api/auth/login",
                json={"email": other.email, "password": other.password},
                timeout=5,
            ),
            200,
        )
        upload = _timed(
            lambda: httpx.post(
                f"{url}/api/cases/{other_case}/files",
                files=[("files", ("ct.dcm", samples.dicom("CT_small.dcm")))],
                headers=other.headers,
                timeout=5,
            ),
            200,
        )
        print(
            f"\nwith {STALLED} stalled uploads open ({ACCOUNTS * MULTIPART_PER_ACCOUNT} "
            f"multipart, {ACCOUNTS * TUS_PER_ACCOUNT} tus PATCH): /healthz {health:.3f} s, "
            f"sign-in {sign_in:.3f} s, another user's upload {upload:.3f} s"
        )
        assert health < 1 and sign_in < 1 and upload < 1
        assert admitted, "the stalled uploads were not all being received"
    finally:
        for sock in stalled:
            sock.close()


def _open_uploads(app: FastAPI) -> int:
    """Upload requests the server is receiving now (-1 where it does not count them)."""
    capacity = getattr(app.state, "upload_capacity", None)
    return capacity.in_flight() if capacity is not None else -1


# -- request heads: uvicorn's configuration from portal.runner ---------------------------------


@pytest.fixture
def head_server(tmp_path: Path, sqlite_template: Path, seaweed: EmbeddedS3) -> Iterator[str]:
    """``portal serve``'s uvicorn configuration, with a 1 s header and keep-alive timeout."""
    shutil.copy(sqlite_template, tmp_path / "portal.db")
    settings = make_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'portal.db'}",
        seaweed,
        host="127.0.0.1",
        port=free_port_block(),
        http_header_timeout_seconds=1,
        http_keep_alive_seconds=1,
    )
    server = uvicorn.Server(runner.server_config(settings, create_app(settings)))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert wait_for(lambda: server.started, timeout=30)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)))


def test_half_sent_request_head_is_closed_after_the_header_timeout(head_server: str):
    with _connect(head_server) as half_line:
        half_line.sendall(b"POST /api/cases/x/fi")
        with _connect(head_server) as half_headers:
            half_headers.sendall(b"GET /healthz HTTP/1.1\r\nHost: portal\r\nX-Slow: a")
            with _connect(head_server) as silent:
                for sock in (half_line, half_headers, silent):
                    elapsed = closed_within(sock, timeout=5)
                    assert elapsed is not None and elapsed < 3, elapsed


def test_trickled_headers_are_closed_even_while_bytes_arrive(head_server: str):
    with _connect(head_server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: portal\r\n")
        started = time.monotonic()
        try:
            for _ in range(20):  # one header byte every 0.2 s: progress, but never a head
                sock.sendall(b"X")
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert closed_within(sock, timeout=5) is not None
        assert time.monotonic() - started < 3


def test_an_endless_request_head_is_refused(head_server: str):
    with _connect(head_server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: portal\r\nX-Big: ")
        try:
            for _ in range(40):  # 160 KiB of one header, at once
                sock.sendall(b"a" * 4096)
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(5)
        try:
            answer = sock.recv(65536)
        except ConnectionResetError:
            answer = b""
        assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:80]
        assert closed_within(sock, timeout=5) is not None
        # Refused for its size, well before the 1 s header timeout would close it.
        assert time.monotonic() - started < 0.7


def test_whole_requests_and_keep_alive_still_work(head_server: str):
    with httpx.Client(base_url=head_server) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/healthz").status_code == 200  # the same kept-alive connection
    with _connect(head_server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: portal\r\n\r\n")
        assert b"200 OK" in sock.recv(65536)
        elapsed = closed_within(sock, timeout=5)  # idle keep-alive: closed after 1 s
        assert elapsed is not None and elapsed < 3
