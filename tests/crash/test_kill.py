"""kill -9 at seeded random moments of an upload, a tus completion, a signature and an erasure:
after housekeeping, storage scrubs clean, the audit chain verifies, and no case shows half of
anything (docs/robustness.md)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from portal.settings import Settings
from tests.crash.harness import Crashes, Outcome, assert_files_whole, kill_points, timed
from tests.fixtures.app import Accounts, open_case
from tests.fixtures.logs import SensitiveValues
from tests.portal import samples

pytestmark = [pytest.mark.slow, pytest.mark.seaweedfs]
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def crashes(
    settings: Settings, app: FastAPI, client: TestClient, tmp_path: Path, sensitive: SensitiveValues
) -> Iterator[Crashes]:
    # Nothing else runs in this portal: whatever a kill left behind may be cleaned at once.
    settings.orphan_grace_seconds = 0
    harness = Crashes(settings, app, tmp_path / "serve.log")
    sensitive.add_log_file(harness.log)
    harness.start()
    yield harness
    harness.stop()


def fastest_of_two(run: Callable[[], Outcome]) -> Outcome:
    """Time a clean run twice (the first request of a fresh server is slower): the faster."""
    runs = [run() for _ in range(2)]
    for outcome in runs:
        assert outcome.finished and outcome.response.status_code < 300, outcome.response
    return min(runs, key=lambda outcome: outcome.seconds)


@SQLITE
def test_kill_during_multipart_upload(crashes: Crashes, client: TestClient, accounts: Accounts):
    patient = accounts.patient()
    series = samples.ct_series(16)
    files = [
        ("files", (f"ct{n:02}.dcm", data, "application/dicom")) for n, data in enumerate(series)
    ]

    def upload_into(case_id: str):
        return lambda: crashes.http(patient.headers).post(
            f"/api/cases/{case_id}/files", files=files
        )

    clean = fastest_of_two(lambda: timed(upload_into(open_case(client, patient)["id"])))
    for delay in kill_points("multipart", clean.seconds):
        case_id = open_case(client, patient)["id"]
        crashes.kill_during("multipart", delay, upload_into(case_id))
        crashes.recover()
        with crashes.http(patient.headers) as http:
            kept = assert_files_whole(http, crashes.app, case_id)
            crashes.record[-1] += f"; {len(kept)} of {len(series)} files were in"
            # The patient sends the same files again: every one is there once, none twice.
            again = http.post(f"/api/cases/{case_id}/files", files=files)
            assert again.status_code == 200 and not again.json()["rejected"], again.text
            duplicates = sum(1 for item in again.json()["accepted"] if item["duplicate"])
            assert duplicates == len(kept), crashes.record
            assert len(assert_files_whole(http, crashes.app, case_id)) == len(series)
    crashes.assert_storage_consistent()
    print("\n".join([f"clean run {clean.seconds:.3f}s", *crashes.record]))


TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = {**TUS, "Content-Type": "application/offset+octet-stream"}


def tus_upload_but_the_last_chunk(client, patient, case_id: str, data: bytes, parts: int) -> str:
    """A tus upload with all but its last chunk sent (in-process): its address."""
    metadata = ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in {"case_id": case_id, "filename": "volume.dcm"}.items()
    )
    created = client.post(
        "/api/uploads",
        headers={
            **patient.headers,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata,
        },
    )
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    size = len(data) // parts
    for offset in range(0, size * (parts - 1), size):
        sent = client.patch(
            location,
            content=data[offset : offset + size],
            headers={**patient.headers, **CHUNK, "Upload-Offset": str(offset)},
        )
        assert sent.status_code == 204, sent.text
    return str(location)


@SQLITE
def test_kill_during_tus_completion(crashes: Crashes, client: TestClient, accounts: Accounts):
    """The final PATCH stores the last chunk, then reads every chunk back into the ingest."""
    patient = accounts.patient()
    data = samples.ct_volume(count=1, size=1100)[0]  # one 2.3 MB instance
    parts = 3
    last = len(data) // parts * (parts - 1)

    def final_patch(location: str):
        return lambda: crashes.http(patient.headers).patch(
            location, content=data[last:], headers={**CHUNK, "Upload-Offset": str(last)}
        )

    def prepared() -> tuple[str, str]:
        case_id = open_case(client, patient)["id"]
        return case_id, tus_upload_but_the_last_chunk(client, patient, case_id, data, parts)

    clean = fastest_of_two(lambda: timed(final_patch(prepared()[1])))
    for delay in kill_points("tus", clean.seconds):
        case_id, location = prepared()
        crashes.kill_during("tus", delay, final_patch(location))
        crashes.recover()
        with crashes.http(patient.headers) as http:
            # What a tus client does after a dropped connection: ask the offset, send the rest.
            offset = int(http.head(location, headers=TUS).headers["upload-offset"])
            crashes.record[-1] += f"; offset {offset} of {len(data)} after restart"
            if offset < len(data):
                rest = http.patch(
                    location, content=data[offset:], headers={**CHUNK, "Upload-Offset": str(offset)}
                )
                assert rest.status_code == 204, rest.text
            status = http.get(location).json()
            assert status["complete"], crashes.record
            files = assert_files_whole(http, crashes.app, case_id)
            assert [f["sha256"] for f in files] == [hashlib.sha256(data).hexdigest()]
    crashes.assert_storage_consistent()
    print("\n".join([f"clean run {clean.seconds:.3f}s", *crashes.record]))
