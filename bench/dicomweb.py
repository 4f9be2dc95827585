"""DICOMweb benchmark: STOW-RS ingest and WADO-RS frame loading, the portal beside Orthanc.

Run: ``.venv/bin/python -m bench.dicomweb`` (``--instances 100`` for a quick look).

Generates the 500-instance 512x512 16-bit CT series of ``bench.ingest`` and prints side by side:

1. STOW-RS, 50 instances per request (a multipart/related body streamed from the files), at 1
   and 4 concurrent clients: instances/s and CPU milliseconds per instance of the portal (all
   its processes), SeaweedFS, and Orthanc for its own STOW-RS on the same files; SeaweedFS
   alone (boto3 PutObject of the same files); and the ratios the targets name.
2. WADO-RS as a viewer loads the series: every instance's ``frames/1`` as
   ``multipart/related; type="application/octet-stream"; transfer-syntax=*``, 6 requests at a
   time, cold (a fresh server process) and warm (a second pass): seconds to the last frame.

The portal side uses only the case's standard DICOMweb root; a side that fails prints its
error on its line and the other lines are still measured. Orthanc runs as the test suite's
peer (``tests.dicomweb.peer``) and its clients run inside its network namespace.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pydicom

from bench.ingest import Meter, Portal, ct_series, storage_alone
from bench.procs import cpu_seconds
from tests.dicomweb.peer import DICOMWEB_ROOT, PORT, OrthancPeer, missing_peer
from tests.fixtures.http_api import consent_to_case

BATCH = 50
CLIENTS = (1, 4)
VIEWER_REQUESTS = 6
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
FRAME_BYTES = 512 * 512 * 2  # one frame of the series, native
PEER_ROOT = f"http://127.0.0.1:{PORT}{DICOMWEB_ROOT}"

Uids = tuple[str, str, str]
T = TypeVar("T")


@dataclass
class Run:
    """One measured run: seconds taken and CPU milliseconds per instance by party."""

    seconds: float
    cpu: dict[str, float]


Outcome = Run | str  # a run, or the error that stopped it


def stow_body(paths: list[Path], boundary: str) -> tuple[Iterator[bytes], int]:
    """A multipart/related; type="application/dicom" body read from the files as it is sent,
    and its length (known up front, so no chunked encoding is needed)."""
    head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    tail = f"--{boundary}--\r\n".encode()
    length = sum(len(head) + path.stat().st_size + 2 for path in paths) + len(tail)

    def chunks() -> Iterator[bytes]:
        for path in paths:
            yield head
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    yield chunk
            yield b"\r\n"
        yield tail

    return chunks(), length


def stow_all(root: str, paths: list[Path], clients: int, headers: dict[str, str]) -> float:
    """STOW-RS every file to ``root``/studies, BATCH per request, ``clients`` at a time."""
    batches = [paths[i : i + BATCH] for i in range(0, len(paths), BATCH)]

    def send(batch: list[Path], client: httpx.Client) -> None:
        boundary = secrets.token_hex(16)
        body, length = stow_body(batch, boundary)
        response = client.post(
            f"{root}/studies",
            content=body,
            headers={
                **headers,
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
                "Content-Length": str(length),
                "Accept": "application/dicom+json",
            },
        )
        if response.status_code != 200:
            raise RuntimeError(f"STOW-RS answered {response.status_code}: {response.text[:200]}")
        stored = response.json().get("00081199", {}).get("Value", [])  # ReferencedSOPSequence
        if len(stored) != len(batch):
            raise RuntimeError(f"STOW-RS stored {len(stored)} of {len(batch)} instances")

    return in_parallel(batches, clients, send)


def load_frames(root: str, instances: list[Uids], parallel: int, headers: dict[str, str]) -> float:
    """GET frames/1 of every instance, ``parallel`` at a time; seconds to the last frame."""

    def fetch(uids: Uids, client: httpx.Client) -> None:
        study, series, sop = uids
        url = f"{root}/studies/{study}/series/{series}/instances/{sop}/frames/1"
        response = client.get(url, headers={**headers, "Accept": FRAME_ACCEPT})
        if response.status_code != 200 or len(response.content) < FRAME_BYTES:
            raise RuntimeError(f"frame answered {response.status_code}: {response.content[:200]!r}")

    return in_parallel(instances, parallel, fetch)


def in_parallel(items: list[T], workers: int, work: Callable[[T, httpx.Client], None]) -> float:
    """``work`` on every item from ``workers`` threads sharing one client; seconds taken."""
    with httpx.Client(timeout=300, limits=httpx.Limits(max_connections=workers)) as client:
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda item: work(item, client), items))
        return time.perf_counter() - started


def portal_side(
    root: Path, paths: list[Path], instances: list[Uids], workers: int = 1
) -> dict[str, Outcome]:
    """The portal's STOW-RS at each client count, SeaweedFS alone, and its frames."""
    results: dict[str, Outcome] = {}
    try:
        with Portal(root, workers=workers) as portal:
            assert portal.s3.pid is not None
            headers = portal.patient()
            stored_in = ""
            for clients in CLIENTS:
                try:
                    results[f"stow {clients}"], stored_in = stow_case(
                        portal, headers, paths, clients
                    )
                except Exception as exc:
                    results[f"stow {clients}"] = describe(exc)
            for clients in CLIENTS:
                with Meter(None, portal.s3.pid) as meter:
                    seconds = storage_alone(portal, paths, clients)
                cost = meter.per(len(paths))
                results[f"alone {clients}"] = Run(seconds, {"SeaweedFS": cost.storage})
            if stored_in:
                portal.stop_server()  # cold: a fresh server process
                portal.start_server()
                for phase in ("cold", "warm"):
                    try:
                        assert portal.process is not None
                        with Meter(portal.process.pid, portal.s3.pid) as meter:
                            seconds = load_frames(stored_in, instances, VIEWER_REQUESTS, headers)
                        cost = meter.per(len(instances))
                        cpu = {"portal": cost.server, "SeaweedFS": cost.storage}
                        results[f"frames {phase}"] = Run(seconds, cpu)
                    except Exception as exc:
                        results[f"frames {phase}"] = describe(exc)
    except Exception as exc:  # the portal did not start: every portal line says why
        for key in (*(f"stow {c}" for c in CLIENTS), *(f"alone {c}" for c in CLIENTS)):
            results.setdefault(key, describe(exc))
    for phase in ("cold", "warm"):
        results.setdefault(f"frames {phase}", "not run: no case was stored")
    return results


def stow_case(
    portal: Portal, headers: dict[str, str], paths: list[Path], clients: int
) -> tuple[Run, str]:
    """STOW-RS the series into a new case (consent given); the run and the case's root."""
    assert portal.process is not None and portal.s3.pid is not None
    case_id = portal.new_case(headers)
    consent_to_case(portal.url, headers, case_id)
    case_root = f"{portal.url}/api/cases/{case_id}/dicomweb"
    with Meter(portal.process.pid, portal.s3.pid) as meter:
        seconds = stow_all(case_root, paths, clients, headers)
    cost = meter.per(len(paths))
    return Run(seconds, {"portal": cost.server, "SeaweedFS": cost.storage}), case_root


def orthanc_side(root: Path, paths: list[Path], instances: list[Uids]) -> dict[str, Outcome]:
    """Orthanc's STOW-RS on empty storage at each client count, then its frames."""
    reason = missing_peer()
    if reason:
        return {key: reason for key in ("stow 1", "stow 4", "frames cold", "frames warm")}
    listing = root / "listing.json"
    listing.write_text(json.dumps({"paths": [str(p) for p in paths], "instances": instances}))
    results: dict[str, Outcome] = {}
    try:
        with OrthancPeer(root / "orthanc") as peer:
            for number, clients in enumerate(CLIENTS):
                if number:
                    peer.restart(empty=True)
                started = cpu_seconds(peer.pid)
                done = peer.run_python("bench.dicomweb", "--peer-stow", str(listing), str(clients))
                used = (cpu_seconds(peer.pid) - started) * 1000 / len(paths)
                results[f"stow {clients}"] = Run(float(done.stdout.split()[-1]), {"Orthanc": used})
            peer.restart()  # cold: a fresh process on the stored series
            started = cpu_seconds(peer.pid)
            timed = peer.run_python("bench.dicomweb", "--peer-frames", str(listing))
            per_frame = (cpu_seconds(peer.pid) - started) * 1000 / (2 * len(instances))
            cold, warm = (
                Run(float(seconds), {"Orthanc": per_frame}) for seconds in timed.stdout.split()
            )
            results["frames cold"], results["frames warm"] = cold, warm
    except Exception as exc:
        for key in ("stow 1", "stow 4", "frames cold", "frames warm"):
            results.setdefault(key, describe(exc))
    return results


def describe(exc: BaseException) -> str:
    return f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:150] if str(exc) else ''}"


def stow_cell(outcome: Outcome, count: int) -> str:
    if isinstance(outcome, str):
        return outcome
    costs = ", ".join(f"{party} {ms:.1f}" for party, ms in outcome.cpu.items())
    return f"{count / outcome.seconds:6.1f} inst/s; CPU ms/inst: {costs}"


def ratio(top: Outcome, bottom: Outcome, value: Callable[[Run], float], target: str) -> str:
    if isinstance(top, str) or isinstance(bottom, str):
        return f"n/a (target {target})"
    return f"{value(top) / value(bottom):.2f}x (target {target})"


def rate(run: Run) -> float:
    return 1 / run.seconds


def seconds_of(run: Run) -> float:
    return run.seconds


def server_cpu(run: Run) -> float:
    """CPU ms per instance of the DICOMweb server itself (not its object store)."""
    return run.cpu.get("portal", run.cpu.get("Orthanc", 0.0))


def frames_cell(outcome: Outcome) -> str:
    if isinstance(outcome, str):
        return outcome
    costs = ", ".join(f"{party} {ms:.1f}" for party, ms in outcome.cpu.items())
    return f"{outcome.seconds:.2f} s (CPU ms/frame: {costs})"


def report(
    count: int, megabytes: float, ours: dict[str, Outcome], theirs: dict[str, Outcome]
) -> None:
    cores = len(os.sched_getaffinity(0))
    print(f"series: {count} instances of 512x512x16 bit, {megabytes:.0f} MB; {cores} cores")
    print("(Orthanc's CPU for frames is the average of its cold and warm passes)")
    print(f"\nSTOW-RS, {BATCH} instances per request")
    alone = {f"stow {c}": ours.get(f"alone {c}", "not run") for c in CLIENTS}
    for name, side in (
        ("portal", ours),
        ("Orthanc", theirs),
        ("SeaweedFS alone (PutObject)", alone),
    ):
        for clients in CLIENTS:
            cell = stow_cell(side.get(f"stow {clients}", "not run"), count)
            print(f"  {name:27} {clients} client(s): {cell}")
    print(
        "  portal STOW / SeaweedFS alone at 4 clients: "
        + ratio(ours["stow 4"], ours["alone 4"], rate, ">= 0.8x")
    )
    for clients in CLIENTS:
        cpu = ratio(ours[f"stow {clients}"], theirs[f"stow {clients}"], server_cpu, "<= 2x")
        print(f"  portal CPU / Orthanc CPU per instance at {clients} client(s): {cpu}")
    print(f"\nWADO-RS, frames/1 of {count} instances, {VIEWER_REQUESTS} requests at a time")
    for name, side in (("portal", ours), ("Orthanc", theirs)):
        cold, warm = frames_cell(side["frames cold"]), frames_cell(side["frames warm"])
        print(f"  {name:10} cold {cold} | warm {warm}")
    cold = ratio(ours["frames cold"], theirs["frames cold"], seconds_of, "<= 2x")
    warm = ratio(ours["frames warm"], theirs["frames warm"], seconds_of, "<= 1.0x")
    print(f"  portal / Orthanc time: cold {cold}, warm {warm}")


def inside_peer(args: argparse.Namespace) -> None:
    """The timed loops on Orthanc's side, run inside its network namespace; prints seconds."""
    listing = json.loads(
        Path(args.peer_stow[0] if args.peer_stow else args.peer_frames).read_text()
    )
    if args.peer_stow:
        paths = [Path(p) for p in listing["paths"]]
        print(stow_all(PEER_ROOT, paths, int(args.peer_stow[1]), {}))
        return
    instances = [tuple(uids) for uids in listing["instances"]]
    print(*(load_frames(PEER_ROOT, instances, VIEWER_REQUESTS, {}) for _ in range(2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument(
        "--workers", type=int, default=1, help="portal server processes (PORTAL_WORKERS)"
    )
    parser.add_argument(
        "--peer-stow", nargs=2, metavar=("LISTING", "CLIENTS"), help=argparse.SUPPRESS
    )
    parser.add_argument("--peer-frames", metavar="LISTING", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_stow or args.peer_frames:
        inside_peer(args)
        return
    root = Path(tempfile.mkdtemp(prefix="portal-bench-dicomweb-"))
    root.chmod(0o755)
    try:
        paths = ct_series(root / "series", args.instances)
        instances = [uids_of(path) for path in paths]
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        ours = portal_side(root / "portal", paths, instances, args.workers)
        theirs = orthanc_side(root, paths, instances)
        report(len(paths), megabytes, ours, theirs)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def uids_of(path: Path) -> Uids:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


if __name__ == "__main__":
    main()
