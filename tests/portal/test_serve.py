"""``portal serve`` with several worker processes: one portal, whichever process answers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from portal.settings import Settings
from tests.fixtures.app import Accounts, open_case
from tests.fixtures.live import ServerProcess
from tests.fixtures.logs import SensitiveValues
from tests.portal import samples


def test_two_workers_share_sessions_cases_and_files(
    settings: Settings,
    client: TestClient,
    accounts: Accounts,
    tmp_path: Path,
    sensitive: SensitiveValues,
):
    patient = accounts.patient()
    case = open_case(client, patient)
    server = ServerProcess(settings, tmp_path / "serve.log")
    server.env["PORTAL_WORKERS"] = "2"
    sensitive.add_log_file(server.log)
    server.start()
    try:
        assert server.process is not None
        workers = subprocess.run(
            ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        assert len(workers) >= 2, workers  # the supervisor and its worker processes
        with httpx.Client(base_url=server.url, headers=patient.headers, timeout=30) as http:
            for n in range(8):  # several connections: both workers take part
                with httpx.Client(base_url=server.url, headers=patient.headers) as fresh:
                    assert fresh.get(f"/api/cases/{case['id']}").status_code == 200
                uploaded = http.post(
                    f"/api/cases/{case['id']}/files",
                    files=[("files", (f"ct{n}.dcm", samples.ct_series(1)[0], "application/dicom"))],
                )
                assert uploaded.status_code == 200 and uploaded.json()["accepted"], uploaded.text
            listed = http.get(f"/api/cases/{case['id']}/files").json()["items"]
            assert len(listed) == 8
    finally:
        server.stop()


def test_the_served_process_freezes_its_start_up_heap_for_the_collector():
    """``portal serve`` settles the heap once the app is built: what start-up made is frozen
    (full collections skip it) and young collections run less often."""
    script = (
        "import gc; from portal.runner import GC_THRESHOLDS, settle_heap; "
        "before = gc.get_freeze_count(); settle_heap(); "
        "print(before, gc.get_freeze_count(), gc.get_threshold() == GC_THRESHOLDS)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    before, frozen, thresholds = done.stdout.split()
    assert int(before) == 0 and int(frozen) > 10_000 and thresholds == "True"
