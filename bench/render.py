"""Viewer benchmark: server time to render a frame, from the encrypted object to PNG bytes.

Run with ``python -m bench.render``. It starts its own ``weed mini`` on free loopback ports in a
temporary directory, stores two synthetic images through the vault and prints figures; nothing
is asserted. Two paths are timed:

* the rendering path alone, as ``portal.viewer.service`` runs it: decrypt the whole object from
  SeaweedFS (SHA-256 checked), parse with pydicom, decode the frame, window, encode the PNG;
  *cold* with nothing cached, *warm* with the parsed data set cached and a new window;
* the same through the HTTP API in-process (SQLite, access check, audit memory, routing).

Images: (a) a 512 x 512 16-bit CT slice, (b) a 2048 x 2048 12-bit CR (smooth anatomy-like
gradient plus noise). Targets: (a) cold median <= 60 ms, (b) cold median <= 250 ms.
"""

from __future__ import annotations

import argparse
import io
import secrets
import statistics
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

from bench.storage import free_port_block
from portal import migrate
from portal.app import create_app
from portal.db import create_db_engine
from portal.settings import Settings
from portal.viewer import render
from portal.viewer.cache import dataset_cache, frame_cache
from portal.viewer.windows import WindowRequest, window_request
from storage.embedded import PORT_SPAN, EmbeddedS3
from storage.keys import LocalKeyring
from storage.objectstore import build_s3_client
from storage.settings import StorageSettings
from storage.vault import StoredObject, Vault, build_vault

CASE = "bench-viewer"
PASSWORD = "viewer benchmark passphrase 2026"  # noqa: S105 - a throwaway account
# Window changes while scrolling: CT presets; for the CR, windows around its own values.
WINDOWS: dict[str, list[dict[str, Any]]] = {
    "CT": [{"preset": name} for name in ("soft_tissue", "bone", "lung", "brain")],
    "CR": [{"center": 2000, "width": 3000}, {"preset": "auto"}, {"center": 1700, "width": 2200}],
}


def dataset(
    pixels: np.ndarray, *, sop_class: UID, modality: str, bits: int, **attributes: Any
) -> bytes:
    """A DICOM Part 10 file holding ``pixels`` (uint16, one frame), explicit VR little endian."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("bench.dcm", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "BENCH^VIEWER", "BENCH-2", modality
    ds.InstanceNumber, ds.SeriesNumber = 1, 1
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def ct_slice(rng: np.random.Generator) -> bytes:
    """A 512² CT slice: air, a soft-tissue body, two lungs and a spine, plus noise (HU + 1024)."""
    y, x = np.mgrid[0:512, 0:512].astype(np.float32)
    hu = np.full((512, 512), -1000.0, np.float32)
    hu[((x - 256) / 200) ** 2 + ((y - 256) / 150) ** 2 <= 1] = 40
    for centre in (180, 332):
        hu[((x - centre) / 60) ** 2 + ((y - 240) / 90) ** 2 <= 1] = -850
    hu[(x - 256) ** 2 + (y - 340) ** 2 <= 30**2] = 700
    hu += rng.normal(0, 12, hu.shape).astype(np.float32)
    stored = np.clip(hu + 1024, 0, 4095)
    return dataset(
        stored, sop_class=CTImageStorage, modality="CT", bits=12, RescaleSlope=1,
        RescaleIntercept=-1024, WindowCenter=40, WindowWidth=400, PixelSpacing=[0.7, 0.7],
        ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
    )  # fmt: skip


def cr_image(rng: np.random.Generator) -> bytes:
    """A 2048² 12-bit chest-like CR: smooth gradients and blobs plus quantum noise; no window,
    so the automatic (percentile) window is part of every render."""
    y, x = np.mgrid[0:2048, 0:2048].astype(np.float32) / 2048
    signal = 900 + 1800 * y + 600 * np.sin(x * np.pi) ** 2
    for cx in (0.32, 0.68):
        signal -= 700 * np.exp(-(((x - cx) / 0.14) ** 2 + ((y - 0.45) / 0.22) ** 2))
    signal += rng.normal(0, 25, signal.shape).astype(np.float32)
    return dataset(
        np.clip(signal, 0, 4095), sop_class=ComputedRadiographyImageStorage, modality="CR",
        bits=12, ImagerPixelSpacing=[0.15, 0.15], PatientOrientation=["L", "F"],
    )  # fmt: skip


def figures(label: str, seconds: list[float]) -> None:
    milliseconds = sorted(s * 1000 for s in seconds)
    median = statistics.median(milliseconds)
    p95 = float(np.percentile(milliseconds, 95))
    print(f"  {label:<44} median {median:7.1f} ms   p95 {p95:7.1f} ms   n={len(seconds)}")


def timed(action: Callable[[], object], rounds: int) -> list[float]:
    action()  # warm-up: imports, first S3 connection, decoder set-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


def request(query: dict[str, Any]) -> WindowRequest:
    return window_request(
        preset=query.get("preset"), center=query.get("center"), width=query.get("width")
    )


def rendering_path(
    vault: Vault, wrapped: bytes, stored: StoredObject, windows: list[WindowRequest], rounds: int
) -> None:
    """Cold: decrypt + parse + decode + window + PNG. Warm: the parsed data set is cached."""

    def cold() -> bytes:
        plaintext = io.BytesIO()
        for chunk in vault.open(
            case_id=CASE, wrapped_key=wrapped, object_key=stored.object_key, sha256=stored.sha256
        ):
            plaintext.write(chunk)
        plaintext.seek(0)
        return render.to_png(render.decode_frame(render.read_dataset(plaintext), index=0))

    cached = render.read_dataset(io.BytesIO(vault.get(
        case_id=CASE, wrapped_key=wrapped, object_key=stored.object_key
    )))  # fmt: skip
    turn = iter(range(10**9))

    def warm() -> bytes:
        window = windows[next(turn) % len(windows)]
        return render.to_png(render.decode_frame(cached, index=0), window=window)

    figures("cold: decrypt, parse, decode, window, PNG", timed(cold, rounds))
    figures("warm: cached data set, new window", timed(warm, rounds))


def png_settings(image_bytes: bytes) -> None:
    """Encode time and size of the display image: the viewer's encoder and Pillow's settings."""
    frame = render.decode_frame(render.read_dataset(io.BytesIO(image_bytes)), index=0)
    shown = render.display_pixels(frame)
    image = Image.fromarray(shown)
    encoders: list[tuple[str, Callable[[], bytes]]] = [
        ("viewer: Sub filter, zlib 1, Z_RLE (used)", lambda: render.encode_png(shown))
    ]
    for level, strategy, name in [
        (1, zlib.Z_RLE, "Pillow level 1, Z_RLE"),
        (1, zlib.Z_DEFAULT_STRATEGY, "Pillow level 1"),
        (3, zlib.Z_DEFAULT_STRATEGY, "Pillow level 3"),
        (6, zlib.Z_DEFAULT_STRATEGY, "Pillow level 6 (its default)"),
    ]:

        def pillow(level: int = level, strategy: int = strategy) -> bytes:
            out = io.BytesIO()
            image.save(out, format="PNG", compress_level=level, compress_type=strategy)
            return out.getvalue()

        encoders.append((name, pillow))
    for name, encode in encoders:
        times = timed(encode, 7)
        print(
            f"    PNG {name:<40} {statistics.median(times) * 1000:7.1f} ms  "
            f"{len(encode()) / 1024:8.0f} KiB"
        )


def api_path(settings: Settings, files: dict[str, bytes], rounds: dict[str, int]) -> None:
    """The same renders through GET /api/cases/{id}/instances/{id}/frames/1, in-process."""
    engine = create_db_engine(settings.database_url)
    migrate.upgrade(engine)
    engine.dispose()
    app = create_app(settings)
    with TestClient(app) as client:
        email = f"bench-{secrets.token_hex(4)}@example.org"
        client.post(
            "/api/auth/register",
            json={"email": email, "password": PASSWORD, "full_name": "Bench Viewer"},
        ).raise_for_status()
        login = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        client.cookies.clear()
        case = client.post("/api/cases", headers=headers, json={
            "subject": "Viewer benchmark", "body_region": "chest",
            "clinical_question": "How fast do frames render?",
        }).json()  # fmt: skip
        base = f"/api/cases/{case['id']}"
        for name, data in files.items():
            uploaded = client.post(
                f"{base}/files",
                headers=headers,
                files=[("files", (name, data, "application/dicom"))],
            )
            uploaded.raise_for_status()
        studies = client.get(f"{base}/studies", headers=headers).json()["studies"]
        for study in studies:
            series = study["series"][0]
            opened = client.get(f"{base}/series/{series['id']}", headers=headers).json()
            url = f"{base}/instances/{opened['instances'][0]['id']}/frames/1"
            label = series["modality"]

            def cold(url: str = url) -> None:
                app.state.viewer.datasets = dataset_cache()  # forget parsed data sets
                app.state.viewer.frames = frame_cache()
                client.get(url, headers=headers).raise_for_status()

            queries = iter(WINDOWS[label] * rounds[label] * 2)

            def warm(url: str = url, queries: Any = queries) -> None:
                client.get(url, headers=headers, params=next(queries)).raise_for_status()

            print(f"{label} through the API (SQLite, in-process HTTP)")
            figures("cold: nothing cached", timed(cold, rounds[label]))
            figures("warm: cached data set, new window", timed(warm, rounds[label]))


def main(argv: list[str] | None = None) -> None:
    """Start SeaweedFS, store the images through the vault, time the renders, print."""
    parser = argparse.ArgumentParser(prog="python -m bench.render")
    parser.add_argument("--ct-rounds", type=int, default=40)
    parser.add_argument("--cr-rounds", type=int, default=20)
    parser.add_argument("--no-api", action="store_true", help="skip the HTTP API figures")
    options = parser.parse_args(argv)
    rng = np.random.default_rng(2026)
    images = {"CT": ct_slice(rng), "CR": cr_image(rng)}
    rounds = {"CT": options.ct_rounds, "CR": options.cr_rounds}
    targets = {"CT": 60.0, "CR": 250.0}
    with tempfile.TemporaryDirectory(prefix="bench-render-") as temp:
        root = Path(temp)
        keyring = root / "keyring.json"
        LocalKeyring.ensure(keyring)
        server = EmbeddedS3(
            data_dir=root / "seaweedfs", s3_port=free_port_block(PORT_SPAN),
            access_key="bench", secret_key=secrets.token_hex(16), bucket="bench",
        )  # fmt: skip
        with server:
            storage = StorageSettings(
                endpoint_url=server.endpoint_url, access_key_id=server.access_key,
                secret_access_key=server.secret_key, bucket="bench", keyring_path=keyring,
                embedded=False,
            )  # fmt: skip
            vault = build_vault(storage, s3_client=build_s3_client(storage))
            vault.ensure_bucket()
            wrapped = vault.new_case_key(CASE)
            for label, data in images.items():
                stored = vault.put(case_id=CASE, wrapped_key=wrapped, source=data)
                shape = "512 x 512 16-bit CT" if label == "CT" else "2048 x 2048 12-bit CR"
                print(f"{shape}: {len(data) / 2**20:.1f} MiB stored encrypted in SeaweedFS")
                print(f"  target: cold median <= {targets[label]:.0f} ms")
                windows = [request(query) for query in WINDOWS[label]]
                rendering_path(vault, wrapped, stored, windows, rounds[label])
                png_settings(data)
            if not options.no_api:
                settings = Settings(
                    environment="test", data_dir=root, database_url=f"sqlite:///{root / 'p.db'}",
                    storage=storage, secret_key=secrets.token_urlsafe(32), sweep_enabled=False,
                )  # fmt: skip
                api_path(settings, {f"{k}.dcm": v for k, v in images.items()}, rounds)


if __name__ == "__main__":
    main()
