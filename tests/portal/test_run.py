"""``portal run`` as ``make run`` starts it: SeaweedFS child, server, Ctrl-C, restart keeps data."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from storage.embedded import PORT_SPAN
from tests.fixtures.logs import SensitiveValues
from tests.services import free_port_block, wait_for

pytestmark = pytest.mark.slow


class PortalProcess:
    def __init__(self, cwd: Path, port: int, s3_port: int) -> None:
        self.cwd, self.port, self.s3_port = cwd, port, s3_port
        self.log = cwd / f"portal-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
        env.update(
            PORTAL_PORT=str(self.port),
            PORTAL_STORAGE_ENDPOINT_URL=f"http://127.0.0.1:{self.s3_port}",
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "portal.cli", "run", "--demo"],
            cwd=self.cwd,
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def interrupt(self, how: signal.Signals = signal.SIGINT) -> int:
        assert self.process is not None
        self.process.send_signal(how)
        return self.process.wait(timeout=30)


def seaweed_running(data_dir: Path) -> bool:
    found = subprocess.run(
        ["pgrep", "-f", f"weed mini -dir={data_dir}"], capture_output=True, check=False
    )
    return found.returncode == 0


def test_run_serves_keeps_data_and_stops_cleanly(tmp_path: Path, sensitive: SensitiveValues):
    server = PortalProcess(tmp_path, free_port_block(), free_port_block(PORT_SPAN))
    sensitive.add_log_file(server.log)
    server.start()
    try:
        assert wait_for(server.ready, timeout=90), server.log.read_text()[-3000:]
        ready = httpx.get(f"{server.url}/readyz").json()
        assert ready["checks"] == {"database": "ok", "object_storage": "ok", "keys": "ok"}

        account = {
            "email": "run-test@example.org",
            "password": "a long private passphrase 5",
            "full_name": "Runa Testova",
        }
        sensitive.add(account["full_name"], account["email"], account["password"])
        assert httpx.post(f"{server.url}/api/auth/register", json=account).status_code == 202
        login = httpx.post(f"{server.url}/api/auth/login", json=account).json()
        sensitive.add(login["access_token"])
        headers = {"Authorization": f"Bearer {login['access_token']}"}
        assert (
            httpx.get(f"{server.url}/api/me", headers=headers).json()["full_name"] == "Runa Testova"
        )
        assert httpx.post(f"{server.url}/api/auth/logout", headers=headers).status_code == 204
        assert httpx.get(f"{server.url}/api/me", headers=headers).status_code == 401
    finally:
        code = server.interrupt()
    assert code == 0, server.log.read_text()[-3000:]
    weed_dir = tmp_path / "var" / "seaweedfs"
    assert wait_for(lambda: not seaweed_running(weed_dir), timeout=20), (
        "SeaweedFS outlived the portal"
    )
    first_output = server.log.read_text()
    assert first_output.count("password:") == 4

    server.start()
    try:
        assert wait_for(server.ready, timeout=90)
        again = httpx.post(f"{server.url}/api/auth/login", json=account)
        assert again.status_code == 200  # the account survived the restart
    finally:
        assert server.interrupt(signal.SIGTERM) == 0  # as a service manager stops it
    assert wait_for(lambda: not seaweed_running(weed_dir), timeout=20), (
        "SeaweedFS outlived the portal stopped with SIGTERM"
    )
    assert server.log.read_text().count("password:") == 4  # demo credentials shown only once
