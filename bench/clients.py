"""The benchmark's HTTP clients: one file per request from N threads, and a big tus upload."""

from __future__ import annotations

import base64
import hashlib
import io
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def send_each(paths: list[Path], threads: int, send: Callable[[Path, httpx.Client], None]) -> float:
    """``send`` every file on its own request from ``threads`` clients; seconds taken."""
    clients = [httpx.Client(timeout=120) for _ in range(threads)]
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda item: send(item[1], clients[item[0] % threads]), enumerate(paths)))
    elapsed = time.perf_counter() - started
    for client in clients:
        client.close()
    return elapsed


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

    return send_each(paths, threads, send)


def tus_all(
    url: str, case_id: str, paths: list[Path], threads: int, headers: dict[str, str]
) -> float:
    """Each file as the browser sends a folder: creation-with-upload carrying the whole file
    and its SHA-256, then a GET of the upload for what was accepted; seconds taken."""

    def send(path: Path, client: httpx.Client) -> None:
        data = path.read_bytes()
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
        created = client.post(
            f"{url}/api/uploads",
            content=data,
            headers={
                **headers,
                "Tus-Resumable": "1.0.0",
                "Upload-Length": str(len(data)),
                "Upload-Metadata": tus_metadata(case_id, path.name),
                "Upload-Checksum": f"sha256 {digest}",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        created.raise_for_status()
        status = client.get(url + created.headers["location"], headers=headers).json()
        if not (status["status"] == "complete" and status["result"]["accepted"]):
            raise RuntimeError(f"{path.name} not accepted: {status}")

    return send_each(paths, threads, send)


def tus_metadata(case_id: str, filename: str) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in (("case_id", case_id), ("filename", filename))
    )


def big_dicom_stream(total: int) -> tuple[bytes, Iterator[bytes], int]:
    """A valid multi-frame DICOM of about ``total`` bytes, streamed (never held in memory)."""
    rows = cols = 512
    frame = rows * cols * 2
    frames = max(1, total // frame)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("big.dcm", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = ds.SeriesInstanceUID = generate_uid()
    ds.Modality, ds.Rows, ds.Columns, ds.NumberOfFrames = "CT", rows, cols, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
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
    url: str, headers: dict[str, str], case_id: str, gigabytes: float
) -> tuple[float, float]:
    """One big DICOM through tus in 64 MiB PATCHes: MB/s and seconds, ingest included."""
    _header, chunks, size = big_dicom_stream(int(gigabytes * 1024**3))
    tus = {**headers, "Tus-Resumable": "1.0.0"}
    created = httpx.post(
        f"{url}/api/uploads",
        headers={
            **tus,
            "Upload-Length": str(size),
            "Upload-Metadata": tus_metadata(case_id, "big.dcm"),
        },
    )
    created.raise_for_status()
    location = url + created.headers["location"]
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
    status = upload_outcome(location, headers)
    elapsed = time.perf_counter() - started
    assert status["status"] == "complete" and status["result"]["accepted"], status
    return size / elapsed / 1e6, elapsed


def upload_outcome(location: str, headers: dict[str, str], timeout: float = 3600) -> dict[str, Any]:
    """Poll ``GET /api/uploads/{id}`` until its completion job has finished; its answer."""
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = httpx.get(location, headers=headers).json()
        if status["status"] in ("complete", "failed") or time.monotonic() > deadline:
            return status
        time.sleep(0.05)
