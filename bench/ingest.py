"""Ingest benchmark: a 500-instance CT series through the HTTP API, optionally against Orthanc.

Run: ``.venv/bin/python -m bench.ingest`` (add ``--instances 100`` for a quick look).

Starts its own SeaweedFS and ``portal serve`` (SQLite) on loopback, generates a synthetic
512x512 16-bit CT series, uploads it at 1 and 4 client threads (one file per request, as a
browser does), and prints instances/s, MB/s and the server's peak RSS. Then streams one 2 GB
DICOM through tus (64 MiB PATCHes) and prints the server's peak RSS during it. Where Orthanc is
installed (``apt-get install orthanc``) it is run in a network namespace of its own (it cannot
bind to loopback only) and fed the same files with POST /instances from inside that namespace.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from bench.clients import tus_all, tus_big_upload, upload_all
from bench.orthanc import orthanc_available, orthanc_client, run_orthanc
from bench.procs import cpu_seconds, peak_rss_mb, reset_peak
from portal.settings import Settings
from storage.embedded import PORT_SPAN, EmbeddedS3
from storage.objectstore import build_s3_client
from storage.settings import StorageSettings
from tests.fixtures.http_api import create_case, register_patient
from tests.fixtures.live import settings_env
from tests.services import free_port_block, wait_for

PASSWORD = "benchmark passphrase 2026"  # noqa: S105 - a throwaway account


def ct_series(folder: Path, count: int, size: int = 512) -> list[Path]:
    """A synthetic CT series: ``count`` slices of ``size``² 16-bit pixels, one file each."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    rng = np.random.default_rng(7)
    base = rng.integers(0, 2000, size=(size, size), dtype=np.uint16)
    paths = []
    for i in range(count):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(f"ct{i:04d}.dcm", Dataset(), file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID, ds.Modality = "BENCH^SYNTHETIC", "BENCH-1", "CT"
        ds.InstanceNumber, ds.SeriesNumber = i + 1, 1
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.ImagePositionPatient = [0, 0, i * 1.0]
        ds.PixelData = np.roll(base, i, axis=0).tobytes()
        path = folder / f"ct{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


class Portal:
    """SeaweedFS + ``portal serve`` in a temp dir, as a deployment would run them."""

    def __init__(self, root: Path, workers: int = 1) -> None:
        self.root = root
        self.workers = workers
        self.s3 = EmbeddedS3(
            data_dir=root / "seaweedfs",
            s3_port=free_port_block(PORT_SPAN),
            access_key="bench",
            secret_key=secrets.token_urlsafe(16),
            bucket="bench-objects",
        )
        storage = StorageSettings(
            endpoint_url=self.s3.endpoint_url,
            access_key_id="bench",
            secret_access_key=self.s3.secret_key,
            bucket="bench-objects",
            keyring_path=root / "keyring.json",
            embedded=False,
        )
        self.settings = Settings(
            data_dir=root,
            database_url=f"sqlite:///{root / 'portal.db'}",
            storage=storage,
            secret_key=secrets.token_urlsafe(32),
        )
        self.port = free_port_block()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Portal:
        from portal import runner

        self.s3.start()
        try:
            runner.init(self.settings, with_demo=False)
            self.start_server()
        except BaseException:
            self.s3.stop()
            raise
        return self

    def start_server(self) -> None:
        """``portal serve`` on the prepared database and SeaweedFS; waits until ready."""
        env = {
            **settings_env(self.settings),
            "PORTAL_PORT": str(self.port),
            "PORTAL_LOG_LEVEL": "WARNING",
            "PORTAL_WORKERS": str(self.workers),
        }
        env["PORTAL_STORAGE_CREATE_BUCKET"] = "true"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "portal.cli", "serve"],
            env=env,
            stdout=(self.root / "serve.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        assert wait_for(self._ready, timeout=60), "portal did not start"

    def stop_server(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def __exit__(self, *exc: object) -> None:
        self.stop_server()
        self.s3.stop()

    def patient(self) -> dict[str, str]:
        return register_patient(self.url, PASSWORD).headers

    def new_case(self, headers: dict[str, str]) -> str:
        return create_case(self.url, headers)


@dataclass
class Costs:
    """CPU milliseconds per instance of each party in one run."""

    server: float
    storage: float
    client: float


class Meter:
    """CPU time used by the server, SeaweedFS and this client over one run, per instance."""

    def __init__(self, server_pid: int | None, storage_pid: int) -> None:
        self.pids = (server_pid, storage_pid)

    def __enter__(self) -> Meter:
        self.started = self._read()
        return self

    def __exit__(self, *exc: object) -> None:
        self.used = [
            after - before for after, before in zip(self._read(), self.started, strict=True)
        ]

    def _read(self) -> list[float]:
        server, storage = self.pids
        return [
            cpu_seconds(server) if server is not None else 0.0,
            cpu_seconds(storage),
            time.process_time(),
        ]

    def per(self, count: int) -> Costs:
        server, storage, client = (seconds * 1000 / count for seconds in self.used)
        return Costs(server=server, storage=storage, client=client)


def storage_alone(portal: Portal, paths: list[Path], threads: int) -> float:
    """PUT the same files straight into SeaweedFS with boto3, no portal; seconds taken.

    What SeaweedFS costs on its own for these objects is the floor under any design that
    stores each instance as an object before answering.
    """
    client = build_s3_client(portal.settings.storage)
    bucket = portal.settings.storage.bucket

    def put(item: tuple[int, Path]) -> None:
        number, path = item
        client.put_object(
            Bucket=bucket, Key=f"bench/{threads}/{number:05d}", Body=path.read_bytes()
        )

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, enumerate(paths)))
    return time.perf_counter() - started


def budget_at_half(
    theirs: dict[int, tuple[float, float, float]],
    alone: dict[int, float],
    costs: dict[int, Costs],
    count: int,
    cores: int,
) -> str:
    """What the portal itself may spend per instance to ingest at half Orthanc's rate.

    One client thread is a chain: client, portal, S3 PUT, one after the other, so the time
    per instance at half Orthanc's rate, less the SeaweedFS PUT on its own (``alone``) and
    the client's CPU, is what is left for the portal. With four threads every core is busy,
    so it is the CPU time per instance at that rate, less SeaweedFS's and the client's.
    """
    serial = theirs[1][0] * 2 / count * 1000 - alone[1] / count * 1000 - costs[1].client
    parallel = theirs[4][0] * 2 / count * 1000 * cores - costs[4].storage - costs[4].client
    return (
        f"to reach 0.5x orthanc the portal could spend per instance: {serial:.1f} ms at 1 "
        f"thread (spends {costs[1].server:.1f} ms CPU), {parallel:.1f} ms CPU at 4 threads "
        f"(spends {costs[4].server:.1f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (PORTAL_WORKERS), default 1"
    )
    parser.add_argument(
        "--big-gb", type=float, default=2.0, help="size of the tus upload (0 to skip)"
    )
    parser.add_argument(
        "--orthanc-client", nargs=3, metavar=("LISTING", "THREADS", "PID"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.orthanc_client:
        listing, threads, pid = args.orthanc_client
        orthanc_client(Path(listing), int(threads), int(pid))
        return
    root = Path(tempfile.mkdtemp(prefix="portal-bench-ingest-"))
    root.chmod(0o755)
    cores = len(os.sched_getaffinity(0))
    try:
        paths = ct_series(root / "series", args.instances)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        print(
            f"series: {len(paths)} instances of 512x512x16 bit, {megabytes:.0f} MB; {cores} cores"
        )
        ours: dict[int, float] = {}
        alone: dict[int, float] = {}
        costs: dict[int, Costs] = {}
        print(f"server: portal serve with {args.workers} worker process(es)")
        with Portal(root / "portal", workers=args.workers) as portal:
            assert portal.process is not None and portal.s3.pid is not None
            headers = portal.patient()
            for threads in (1, 4):
                case_id = portal.new_case(headers)
                reset_peak(portal.process.pid)
                with Meter(portal.process.pid, portal.s3.pid) as meter:
                    seconds = upload_all(
                        f"{portal.url}/api/cases/{case_id}/files", paths, threads, headers
                    )
                ours[threads] = seconds
                rss = peak_rss_mb(portal.process.pid)
                cost = costs[threads] = meter.per(len(paths))
                print(
                    f"portal, {threads} thread(s): {len(paths) / seconds:.1f} instances/s, "
                    f"{megabytes / seconds:.1f} MB/s, server peak RSS {rss:.0f} MB; "
                    f"CPU ms/instance: portal {cost.server:.1f}, SeaweedFS {cost.storage:.1f}, "
                    f"client {cost.client:.1f}"
                )
            for threads in (1, 4):
                case_id = portal.new_case(headers)
                with Meter(portal.process.pid, portal.s3.pid) as meter:
                    seconds = tus_all(portal.url, case_id, paths, threads, headers)
                cost = meter.per(len(paths))
                print(
                    f"portal via tus (as the browser sends a folder), {threads} thread(s): "
                    f"{len(paths) / seconds:.1f} instances/s; CPU ms/instance: portal "
                    f"{cost.server:.1f}, SeaweedFS {cost.storage:.1f}, client {cost.client:.1f}"
                )
            for threads in (1, 4):
                with Meter(None, portal.s3.pid) as meter:
                    seconds = storage_alone(portal, paths, threads)
                alone[threads] = seconds
                cost = meter.per(len(paths))
                print(
                    f"SeaweedFS alone (boto3 PutObject of the same files), {threads} thread(s): "
                    f"{len(paths) / seconds:.1f} objects/s; CPU ms/object: SeaweedFS "
                    f"{cost.storage:.1f}, client {cost.client:.1f}"
                )
            if args.big_gb > 0:
                reset_peak(portal.process.pid)
                rate, seconds = tus_big_upload(
                    portal.url, headers, portal.new_case(headers), args.big_gb
                )
                rss = peak_rss_mb(portal.process.pid)
                print(
                    f"tus, one {args.big_gb:.1f} GB DICOM in 64 MiB PATCHes: {rate:.1f} MB/s "
                    f"({seconds:.0f} s incl. ingest), server peak RSS {rss:.0f} MB"
                )
        if orthanc_available() and os.geteuid() == 0:
            theirs = run_orthanc(paths, [1, 4], root)
            for threads, (seconds, server_ms, client_ms) in theirs.items():
                print(
                    f"orthanc, {threads} thread(s): {len(paths) / seconds:.1f} instances/s; "
                    f"portal/orthanc = {seconds / ours[threads]:.2f}x; CPU ms/instance: "
                    f"Orthanc {server_ms:.1f}, client {client_ms:.1f}"
                )
            for threads, seconds in alone.items():
                print(
                    f"SeaweedFS alone / orthanc, {threads} thread(s): "
                    f"{theirs[threads][0] / seconds:.2f}x (the most a portal that stores each "
                    "instance in SeaweedFS before answering could reach)"
                )
            print(budget_at_half(theirs, alone, costs, len(paths), cores))
        else:
            print("orthanc: not installed (apt-get install orthanc) — no comparison this run")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
