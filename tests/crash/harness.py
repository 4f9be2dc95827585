"""Kill ``portal serve`` (or a CLI command) with SIGKILL in the middle of an operation, then
check what a restarted portal shows.

Kill points are seeded and spread over the operation's measured duration: a clean run is
timed first, then the k-th of n kills lands at a random moment of the k-th n-th of that time.
``CRASH_SEED`` and ``CRASH_KILLS`` (environment) change the seed and the kills per operation.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlmodel import Session, col, select

from portal import admin_commands, housekeeping, storage_commands
from portal.intake.models import CaseFile, DicomInstance
from portal.objects.models import StoredObject
from portal.settings import Settings
from tests.fixtures.live import ServerProcess
from tests.services import free_port_block, wait_for

SEED = int(os.environ.get("CRASH_SEED", "20261203"))
KILLS = int(os.environ.get("CRASH_KILLS", "5"))


def kill_points(operation: str, duration: float, kills: int = KILLS) -> list[float]:
    """Seeded delays, one in each of ``kills`` equal slices of ``duration``."""
    rng = random.Random(f"{SEED}:{operation}")
    return [duration * (k + rng.random()) / kills for k in range(kills)]


@dataclass
class Outcome:
    """What the client saw of one operation: its answer, or the connection cut by the kill."""

    response: httpx.Response | None = None
    error: BaseException | None = None
    seconds: float = 0.0

    @property
    def finished(self) -> bool:
        return self.response is not None


def timed(action: Callable[[], httpx.Response]) -> Outcome:
    started = time.monotonic()
    try:
        response = action()
    except httpx.HTTPError as exc:
        return Outcome(error=exc, seconds=time.monotonic() - started)
    return Outcome(response=response, seconds=time.monotonic() - started)


@dataclass
class Crashes:
    """One ``portal serve`` process the test kills and restarts, plus the checks after each."""

    settings: Settings
    app: FastAPI
    log: Path
    server: ServerProcess = field(init=False)
    record: list[str] = field(default_factory=list)
    """One line per kill (operation, delay, what the client saw): for the failure message."""

    def __post_init__(self) -> None:
        self.server = ServerProcess(self.settings, self.log)
        self.server.env["PORTAL_SWEEP_ENABLED"] = "false"  # the test runs housekeeping itself

    def start(self) -> None:
        self.launch()
        self.wait_until_ready()

    def launch(self) -> None:
        """Start ``portal serve`` without waiting for it (start-up takes seconds here)."""
        self.server.process = subprocess.Popen(
            [sys.executable, "-m", "portal.cli", "serve"],
            env=self.server.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def wait_until_ready(self) -> None:
        """Wait for /healthz. The port was free when chosen, but other test runs on this machine
        may take it while the server is down: then the new server cannot bind and exits, and
        it is started again on another free port."""
        for _ in range(3):
            process = self.server.process
            assert process is not None
            up_or_gone = wait_for(
                lambda p=process: self.server._ready() or p.poll() is not None,  # type: ignore[misc]
                timeout=90,
            )
            if up_or_gone and process.poll() is None:
                return
            process.kill()
            process.wait(timeout=30)
            self.server.port = free_port_block()
            self.server.url = f"http://127.0.0.1:{self.server.port}"
            self.server.env["PORTAL_PORT"] = str(self.server.port)
            self.launch()
        raise AssertionError(self.log.read_text()[-3000:])

    def stop(self) -> None:
        self.server.stop()

    def http(self, headers: dict[str, str]) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=60)

    def kill_during(
        self, operation: str, delay: float, action: Callable[[], httpx.Response]
    ) -> Outcome:
        """Run ``action`` against the server and SIGKILL the server ``delay`` seconds in."""
        process = self.server.process
        assert process is not None
        outcome = Outcome()

        def run() -> None:
            nonlocal outcome
            outcome = timed(action)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        time.sleep(delay)
        process.kill()
        process.wait(timeout=30)
        worker.join(timeout=60)
        self.server.process = None
        seen = outcome.response.status_code if outcome.response is not None else "cut"
        self.record.append(f"{operation}: kill at {delay:.3f}s, client saw {seen}")
        return outcome

    def recover(self, *, restart: bool = True) -> None:
        """Housekeeping once, then the stores must be consistent; the server comes back."""
        report = housekeeping.run_once(
            engine=self.app.state.engine,
            vault=self.app.state.vault,
            settings=self.settings,
            mail=False,
        )
        cleaned = {
            "upload(s) finished": report.finished_uploads,
            "orphaned object(s) removed": report.orphans.objects_removed,
            "multipart upload(s) aborted": report.orphans.uploads_aborted,
        }
        done = ", ".join(f"{count} {what}" for what, count in cleaned.items() if count)
        if self.record:
            self.record[-1] += f"; housekeeping: {done or 'nothing to do'}"
        self.assert_storage_consistent()
        if restart:
            self.start()

    def assert_storage_consistent(self) -> None:
        """``portal storage scrub`` and ``portal audit verify`` both pass."""
        for command in (storage_commands.scrub, admin_commands.verify_audit):
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                status = command(self.settings)
            assert status == 0, f"{command.__name__}: {printed.getvalue()}\n" + "\n".join(
                self.record
            )


def assert_files_whole(http: httpx.Client, app: FastAPI, case_id: str) -> list[dict[str, Any]]:
    """Every file the case lists reads back byte for byte and, if DICOM, is indexed."""
    listed = http.get(f"/api/cases/{case_id}/files")
    assert listed.status_code == 200, listed.text
    files: list[dict[str, Any]] = listed.json()["items"]
    for item in files:
        content = http.get(f"/api/cases/{case_id}/files/{item['id']}/content")
        assert content.status_code == 200, content.text
        assert len(content.content) == item["size"]
    with Session(app.state.engine) as session:
        rows = session.exec(
            select(CaseFile, StoredObject, DicomInstance)
            .join(StoredObject, col(StoredObject.id) == col(CaseFile.stored_object_id))
            .join(DicomInstance, col(DicomInstance.file_id) == col(CaseFile.id), isouter=True)
            .where(CaseFile.case_id == uuid.UUID(case_id))
        ).all()
    assert len(rows) == len(files)
    unindexed = [f.filename for f, _, instance in rows if f.kind == "dicom" and instance is None]
    assert not unindexed, f"DICOM files without an index row: {unindexed}"
    studies = http.get(f"/api/cases/{case_id}/studies").json()
    instances = sum(s["instances"] for study in studies["studies"] for s in study["series"])
    assert instances == sum(1 for f in files if f["kind"] == "dicom")
    return files
