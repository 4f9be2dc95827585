"""Orthanc side of the ingest benchmark: the same files POSTed to Orthanc's /instances.

Orthanc cannot bind to loopback only, so it is run in a network namespace of its own and the
client runs in there too, by re-invoking ``python -m bench.ingest --orthanc-client LISTING
THREADS`` (handled by ``bench.ingest.main``, which calls ``orthanc_client``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.clients import send_each
from bench.procs import cpu_seconds
from tests.services import wait_for

NETNS = "portal-bench-orthanc"


def orthanc_available() -> bool:
    return shutil.which("Orthanc") is not None and shutil.which("ip") is not None


def run_orthanc(
    paths: list[Path], threads_list: list[int], root: Path
) -> dict[int, tuple[float, float, float]]:
    """Orthanc in its own network namespace; the client runs in there too.

    For each client thread count: seconds taken, then Orthanc's and the client's CPU time
    per instance in milliseconds.
    """
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", NETNS, "ip", "link", "set", "lo", "up"], check=True)
        results = {}
        for threads in threads_list:
            storage = root / f"orthanc-{threads}"
            storage.mkdir()
            config = root / f"orthanc-{threads}.json"
            config.write_text(
                json.dumps(
                    {
                        "Name": "bench",
                        "StorageDirectory": str(storage),
                        "IndexDirectory": str(storage),
                        "HttpPort": 8042,
                        "DicomServerEnabled": False,
                        "RemoteAccessAllowed": False,
                        "AuthenticationEnabled": False,
                        "HttpCompressionEnabled": False,
                    }
                )
            )
            server = subprocess.Popen(
                ["ip", "netns", "exec", NETNS, "Orthanc", str(config)],
                stdout=(root / "orthanc.log").open("ab"),
                stderr=subprocess.STDOUT,
            )
            try:
                listing = root / "files.txt"
                listing.write_text("\n".join(str(p) for p in paths))
                done = subprocess.run(
                    [
                        "ip",
                        "netns",
                        "exec",
                        NETNS,
                        sys.executable,
                        "-m",
                        "bench.ingest",
                        "--orthanc-client",
                        str(listing),
                        str(threads),
                        str(server.pid),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=Path(__file__).resolve().parents[1],
                )
                last = done.stdout.strip().splitlines()[-1]
                seconds, client_cpu, server_cpu = map(float, last.split())
                results[threads] = (
                    seconds,
                    server_cpu * 1000 / len(paths),
                    client_cpu * 1000 / len(paths),
                )
            finally:
                server.terminate()
                server.wait(timeout=30)
        return results
    finally:
        subprocess.run(["ip", "netns", "delete", NETNS], check=False)


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
