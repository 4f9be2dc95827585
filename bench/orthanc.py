"""Orthanc side of the ingest benchmark: the same files POSTed to Orthanc's /instances.

Orthanc runs as the test suite's peer (``tests.dicomweb.peer``: its own network namespace, as it
cannot bind to loopback only) and the client runs in there too, by re-invoking ``python -m
bench.ingest --orthanc-client LISTING THREADS PID`` (handled by ``bench.ingest.main``, which
calls ``orthanc_client``).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from bench.clients import send_each
from bench.procs import cpu_seconds
from tests.dicomweb.peer import OrthancPeer, missing_peer
from tests.services import wait_for


def orthanc_available() -> bool:
    return missing_peer() is None


def run_orthanc(
    paths: list[Path], threads_list: list[int], root: Path
) -> dict[int, tuple[float, float, float]]:
    """A fresh Orthanc (empty storage) for each client thread count; the client runs beside it.

    For each client thread count: seconds taken, then Orthanc's and the client's CPU time
    per instance in milliseconds.
    """
    listing = root / "files.txt"
    listing.write_text("\n".join(str(p) for p in paths))
    results = {}
    with OrthancPeer(root / "orthanc", dicomweb=False) as peer:
        for number, threads in enumerate(threads_list):
            if number:
                peer.restart(empty=True)
            done = peer.run_python(
                "bench.ingest", "--orthanc-client", str(listing), str(threads), str(peer.pid)
            )
            last = done.stdout.strip().splitlines()[-1]
            seconds, client_cpu, server_cpu = map(float, last.split())
            results[threads] = (
                seconds,
                server_cpu * 1000 / len(paths),
                client_cpu * 1000 / len(paths),
            )
    return results


def orthanc_client(listing: Path, threads: int, server_pid: int) -> None:
    """Inside the namespace: wait for Orthanc, POST /instances; print the seconds taken and
    the CPU seconds the client and Orthanc (``server_pid``, read after it is ready) used."""
    paths = [Path(line) for line in listing.read_text().splitlines()]
    url = "http://127.0.0.1:8042"
    assert wait_for(lambda: _answers(f"{url}/system"), timeout=60), "Orthanc did not start"

    def send(path: Path, client: httpx.Client) -> None:
        client.post(f"{url}/instances", content=path.read_bytes()).raise_for_status()

    server_started, cpu_started = cpu_seconds(server_pid), time.process_time()
    seconds = send_each(paths, threads, send)
    client_cpu = time.process_time() - cpu_started
    print(seconds, client_cpu, cpu_seconds(server_pid) - server_started)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
