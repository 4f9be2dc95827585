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
import base64
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from bench.orthanc import orthanc_available, orthanc_client, run_orthanc
from portal.settings import Settings
from storage.embedded import PORT_SPAN, EmbeddedS3
from storage.settings import StorageSettings
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
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
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


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the server's worker processes, if any)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            found += process_tree(int(child))
    return found


def peak_rss_mb(pid: int) -> float:
    """Peak RSS of the server: summed over its processes when it runs several workers."""
    total = 0.0
    for member in process_tree(pid):
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


def reset_peak(pid: int) -> None:
    """Reset VmHWM so the next peak measured belongs to the next phase (Linux ≥ 4.0)."""
    for member in process_tree(pid):
        Path(f"/proc/{member}/clear_refs").write_text("5")


class Portal:
    """SeaweedFS + ``portal serve`` in a temp dir, as a deployment would run them."""

    def __init__(self, root: Path, workers: int = 1) -> None:
        self.root = root
        self.workers = workers
        self.s3 = EmbeddedS3(
            data_dir=root / "seaweedfs",
            s3_port=free_port_block(PORT_SPAN, start=41000),
            access_key="bench",
            secret_key=secrets.token_urlsafe(16),
            bucket="bench-objects",
        )
        storage = StorageSettings(
            endpoint_url=self.s3.endpoint_url,
            access_key_id="bench",
            secret_access_key=self.s3.secret_key,
            bucket="bench-objects",  # type: ignore[arg-type]
            keyring_path=root / "keyring.json",
            embedded=False,
        )
        self.settings = Settings(
            data_dir=root,
            database_url=f"sqlite:///{root / 'portal.db'}",
            storage=storage,
            secret_key=secrets.token_urlsafe(32),  # type: ignore[arg-type]
        )
        self.port = free_port_block(start=45000)
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Portal:
        from portal import runner

        self.s3.start()
        runner.init(self.settings, with_demo=False)
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
            stdout=(self.root / "serve.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        assert wait_for(self._ready, timeout=60), "portal did not start"
        return self

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.s3.stop()

    def patient(self) -> dict[str, str]:
        email = f"bench-{secrets.token_hex(4)}@example.org"
        body = {"email": email, "password": PASSWORD, "full_name": "Bench Patient"}
        httpx.post(f"{self.url}/api/auth/register", json=body).raise_for_status()
        token = httpx.post(f"{self.url}/api/auth/login", json=body).json()["access_token"]
        return {"Authorization": f"Bearer {token}"}

    def new_case(self, headers: dict[str, str]) -> str:
        body = {
            "subject": "Benchmark",
            "body_region": "spine",
            "clinical_question": "Benchmark ingest run.",
        }
        response = httpx.post(f"{self.url}/api/cases", json=body, headers=headers)
        response.raise_for_status()
        return str(response.json()["id"])


def upload_all(url: str, paths: list[Path], threads: int, headers: dict[str, str]) -> float:
    """POST every file on its own request from ``threads`` clients; seconds taken."""

    def send(path: Path, client: httpx.Client) -> None:
        with path.open("rb") as handle:
            response = client.post(
                url, files={"files": (path.name, handle, "application/dicom")}, headers=headers
            )
        response.raise_for_status()
        body = response.json()
        if "accepted" in body and not body["accepted"]:
            raise RuntimeError(f"{path.name} rejected: {body['rejected']}")

    clients = [httpx.Client(timeout=120) for _ in range(threads)]
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda item: send(item[1], clients[item[0] % threads]), enumerate(paths)))
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    return elapsed


def big_dicom_stream(total: int) -> tuple[bytes, Iterator[bytes], int]:
    """A valid multi-frame DICOM of about ``total`` bytes, streamed (never held in memory)."""
    rows = cols = 512
    frame = rows * cols * 2
    frames = max(1, total // frame)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = ds.SeriesInstanceUID = generate_uid()
    ds.Modality, ds.Rows, ds.Columns, ds.NumberOfFrames = "CT", rows, cols, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    import io

    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)  # everything but the pixel data element
    header = out.getvalue()
    pixel_length = frames * frame
    element = b"\xe0\x7f\x10\x00OW\x00\x00" + pixel_length.to_bytes(4, "little")
    size = len(header) + len(element) + pixel_length

    def chunks() -> Iterator[bytes]:
        yield header + element
        block = bytes(range(256)) * (4 * 1024 * 1024 // 256)
        left = pixel_length
        while left:
            piece = block[: min(left, len(block))]
            left -= len(piece)
            yield piece

    return header, chunks(), size


def tus_big_upload(
    portal: Portal, headers: dict[str, str], case_id: str, gigabytes: float
) -> tuple[float, float]:
    _header, chunks, size = big_dicom_stream(int(gigabytes * 1024**3))
    meta = ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in (("case_id", case_id), ("filename", "big.dcm"))
    )
    tus = {**headers, "Tus-Resumable": "1.0.0"}
    created = httpx.post(
        f"{portal.url}/api/uploads",
        headers={**tus, "Upload-Length": str(size), "Upload-Metadata": meta},
    )
    created.raise_for_status()
    location = portal.url + created.headers["location"]
    patch_size = 64 * 1024 * 1024
    buffer, offset = b"", 0
    started = time.perf_counter()
    with httpx.Client(timeout=600) as client:
        for chunk in [*chunks, b""]:
            buffer += chunk
            while len(buffer) >= patch_size or (not chunk and buffer):
                body, buffer = buffer[:patch_size], buffer[patch_size:]
                response = client.patch(
                    location,
                    content=body,
                    headers={
                        **tus,
                        "Content-Type": "application/offset+octet-stream",
                        "Upload-Offset": str(offset),
                    },
                )
                response.raise_for_status()
                offset += len(body)
    elapsed = time.perf_counter() - started
    status = httpx.get(location, headers=headers).json()
    assert status["complete"] and status["result"]["accepted"], status
    return size / elapsed / 1e6, elapsed


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
        "--orthanc-client", nargs=2, metavar=("LISTING", "THREADS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.orthanc_client:
        orthanc_client(Path(args.orthanc_client[0]), int(args.orthanc_client[1]))
        return
    root = Path(tempfile.mkdtemp(prefix="portal-bench-ingest-"))
    root.chmod(0o755)
    try:
        paths = ct_series(root / "series", args.instances)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        print(f"series: {len(paths)} instances of 512x512x16 bit, {megabytes:.0f} MB")
        ours: dict[int, float] = {}
        print(f"server: portal serve with {args.workers} worker process(es)")
        with Portal(root / "portal", workers=args.workers) as portal:
            assert portal.process is not None
            headers = portal.patient()
            for threads in (1, 4):
                case_id = portal.new_case(headers)
                reset_peak(portal.process.pid)
                seconds = upload_all(
                    f"{portal.url}/api/cases/{case_id}/files", paths, threads, headers
                )
                ours[threads] = seconds
                rss = peak_rss_mb(portal.process.pid)
                print(
                    f"portal, {threads} thread(s): {len(paths) / seconds:.1f} instances/s, "
                    f"{megabytes / seconds:.1f} MB/s, server peak RSS {rss:.0f} MB"
                )
            if args.big_gb > 0:
                reset_peak(portal.process.pid)
                rate, seconds = tus_big_upload(
                    portal, headers, portal.new_case(headers), args.big_gb
                )
                rss = peak_rss_mb(portal.process.pid)
                print(
                    f"tus, one {args.big_gb:.1f} GB DICOM in 64 MiB PATCHes: {rate:.1f} MB/s "
                    f"({seconds:.0f} s incl. ingest), server peak RSS {rss:.0f} MB"
                )
        if orthanc_available() and os.geteuid() == 0:
            theirs = run_orthanc(paths, [1, 4], root)
            for threads, seconds in theirs.items():
                print(
                    f"orthanc, {threads} thread(s): {len(paths) / seconds:.1f} instances/s; "
                    f"portal/orthanc = {seconds / ours[threads]:.2f}x"
                )
        else:
            print("orthanc: not installed (apt-get install orthanc) — no comparison this run")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
