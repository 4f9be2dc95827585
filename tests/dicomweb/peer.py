"""Orthanc with its DICOMweb plugin as the reference peer, in a network namespace of its own.

Orthanc cannot bind to loopback only, so each peer gets a fresh network namespace with nothing
but its own loopback interface, and everything that talks to it runs in there too: requests go
through ``tests.dicomweb.peer_client`` started with ``ip netns exec``, and benchmarks run their
timed loops in there with :meth:`OrthancPeer.run_python`. Storage is a temp dir; the process
and the namespace are removed on exit, also when starting or a request failed.

Configuration, chosen so that Orthanc answers as PS3.18 says (docs/dicomweb-conformance.md):

- ``StudiesMetadata`` / ``SeriesMetadata`` ``"Full"``: WADO-RS ``/metadata`` reads every
  instance from storage, so it holds all of an instance's attributes, as the standard asks;
  ``MainDicomTags`` would answer only Orthanc's index columns.
- ``QidoCaseSensitive`` ``true``: QIDO-RS matches as C-FIND does (PS3.4 C.2.2.2), case
  sensitively; Orthanc otherwise follows its own ``CaseSensitivePN`` (false).
- ``EnableWado`` ``false``: WADO-URI is not what is compared; ``Host``/``Ssl`` unset, so the
  Retrieve URLs Orthanc writes are built from the request's own Host header.
- ``HttpCompressionEnabled`` ``false``: bodies are measured as sent, not gzipped.
- ``DicomServerEnabled`` ``false``, ``AuthenticationEnabled`` ``false``: no DIMSE port, no
  users; the namespace has no interface but loopback, so nothing outside can reach it.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ORTHANC = "Orthanc"
PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
PORT = 8042
DICOMWEB_ROOT = "/dicom-web"
REPOSITORY = Path(__file__).resolve().parents[2]


# Where this peer (Debian 12: Orthanc 1.10.1, DICOMweb plugin 1.7, configured as above) answers
# otherwise than PS3.18, keyed by (what was asked, tag). Measured, not assumed:
# tests/dicomweb/test_peer.py fails when this stops being exactly true.
# docs/dicomweb-conformance.md explains each.
PEER_DEVIATIONS: dict[tuple[str, str], str] = {
    # InstanceAvailability (C, "if known"): never returned, though everything it holds is ONLINE.
    ("studies", "00080056"): "no InstanceAvailability",
    ("series", "00080056"): "no InstanceAvailability",
    ("series instances", "00080056"): "no InstanceAvailability",
    ("instances", "00080056"): "no InstanceAvailability",
    # A search of all series or all instances must carry the study's keys (10.6.3.3.2-3);
    # the ones Orthanc works out rather than reads from a file are left out.
    ("series", "00080061"): "no ModalitiesInStudy when searching all series",
    ("series", "00201206"): "no NumberOfStudyRelatedSeries when searching all series",
    ("series", "00201208"): "no NumberOfStudyRelatedInstances when searching all series",
    ("instances", "00080061"): "no ModalitiesInStudy when searching all instances",
    ("instances", "00201206"): "no NumberOfStudyRelatedSeries when searching all instances",
    ("instances", "00201208"): "no NumberOfStudyRelatedInstances when searching all instances",
    ("instances", "00201209"): "no NumberOfSeriesRelatedInstances when searching all instances",
    # WADO-RS metadata ("Full" mode) against the stored file.
    ("metadata", "7FE00010"): "no PixelData (nor BulkDataURI) for encapsulated transfer syntaxes",
    ("metadata", "00080005"): "drops the empty first value of an ISO 2022 Specific Character Set",
    # DICOM JSON form (F.2.2: only non-empty PN component groups are sent).
    ("json", "00100010"): 'PN with an empty group ("Phonetic": "")',
}


class PeerUnavailable(RuntimeError):
    """Orthanc, its DICOMweb plugin or the rights to make a network namespace are missing."""


def missing_peer() -> str | None:
    """Why the peer cannot run here, or None when it can."""
    if shutil.which(ORTHANC) is None:
        return "Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)"
    if not PLUGIN.exists():
        return (
            f"the DICOMweb plugin is not installed at {PLUGIN} (apt-get install orthanc-dicomweb)"
        )
    if shutil.which("ip") is None:
        return "'ip' is not installed (apt-get install iproute2)"
    if os.geteuid() != 0:
        return "making a network namespace for Orthanc needs root"
    return None


def orthanc_configuration(storage: Path, port: int = PORT, dicomweb: bool = True) -> dict[str, Any]:
    """Orthanc's configuration file for one peer (the options are explained above)."""
    config: dict[str, Any] = {
        "Name": "conformance-peer",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpCompressionEnabled": False,
        "SaveJobs": False,
        "DefaultEncoding": "Utf8",
        "Plugins": [str(PLUGIN)],
        "DicomWeb": {
            "Enable": True,
            "Root": f"{DICOMWEB_ROOT}/",
            "EnableWado": False,
            "QidoCaseSensitive": True,
            "StudiesMetadata": "Full",
            "SeriesMetadata": "Full",
        },
    }
    if not dicomweb:
        del config["Plugins"], config["DicomWeb"]
    return config


@dataclass
class PeerRequest:
    """One HTTP request to the peer; ``path`` is relative to its address (``/dicom-web/…``)."""

    path: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body_file: Path | None = None


@dataclass
class PeerResponse:
    status: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


class OrthancPeer:
    """Orthanc + DICOMweb in a fresh network namespace with storage in a temp dir.

    Use as a context manager; :meth:`restart` stops and starts the process (cold caches),
    optionally on empty storage. ``dicomweb=False`` runs Orthanc without the plugin (for
    comparisons of its own REST API).
    """

    def __init__(
        self, workdir: Path | None = None, *, port: int = PORT, dicomweb: bool = True
    ) -> None:
        self.dicomweb = dicomweb
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="portal-orthanc-peer-"))
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.dicomweb_url = f"{self.url}{DICOMWEB_ROOT}"
        self.namespace = f"portal-peer-{os.getpid()}-{secrets.token_hex(3)}"
        self.log = self.workdir / "orthanc.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._namespace_made = False

    @property
    def pid(self) -> int:
        assert self.process is not None, "the peer is not running"
        return self.process.pid

    def __enter__(self) -> OrthancPeer:
        reason = missing_peer()
        if reason:
            raise PeerUnavailable(reason)
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(["ip", "netns", "add", self.namespace], check=True)
            self._namespace_made = True
            self._in_namespace(["ip", "link", "set", "lo", "up"], check=True)
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._namespace_made:
            subprocess.run(["ip", "netns", "delete", self.namespace], check=False)
            self._namespace_made = False

    def start(self) -> None:
        """Start Orthanc on the current storage and wait until the DICOMweb root answers."""
        storage = self.workdir / "storage"
        storage.mkdir(exist_ok=True)
        config = self.workdir / "orthanc.json"
        config.write_text(
            json.dumps(orthanc_configuration(storage, self.port, self.dicomweb), indent=2)
        )
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.namespace, ORTHANC, str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        ready = f"{self.dicomweb_url}/studies" if self.dicomweb else f"{self.url}/system"
        for _ in range(30):  # two-second waits, so that a process that died is noticed soon
            waited = self.run_python(
                "tests.dicomweb.peer_client", "--wait", ready, "--timeout", "2", check=False
            )
            if waited.returncode == 0 or self.process.poll() is not None:
                break
        if waited.returncode != 0 or self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            self.stop()
            raise RuntimeError(f"Orthanc did not start: {waited.stderr.strip()}\n{tail}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def restart(self, *, empty: bool = False) -> None:
        """A fresh Orthanc process (nothing cached), on empty storage when ``empty``."""
        self.stop()
        if empty:
            shutil.rmtree(self.workdir / "storage", ignore_errors=True)
        self.start()

    def request(self, requests: Iterable[PeerRequest]) -> list[PeerResponse]:
        """Send the requests in order from inside the namespace; their answers, in order."""
        batch = [
            {
                "method": r.method,
                "url": f"{self.url}{r.path}",
                "headers": r.headers,
                **({"body_file": str(r.body_file)} if r.body_file else {}),
            }
            for r in requests
        ]
        with tempfile.TemporaryDirectory(dir=self.workdir) as folder:
            asked, answered = Path(folder) / "requests.json", Path(folder) / "results.json"
            asked.write_text(json.dumps(batch))
            self.run_python("tests.dicomweb.peer_client", str(asked), str(answered))
            results = json.loads(answered.read_text())
        return [
            PeerResponse(r["status"], r["headers"], base64.b64decode(r["body"])) for r in results
        ]

    def get_json(self, path: str) -> Any:
        """GET a DICOMweb resource as application/dicom+json; fails unless 200."""
        (response,) = self.request(
            [PeerRequest(path, headers={"Accept": "application/dicom+json"})]
        )
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {response.content[:300]!r}")
        return response.json()

    def store(self, paths: Iterable[Path]) -> None:
        """Store files with Orthanc's own POST /instances; fails unless each is accepted."""
        paths = list(paths)
        answers = self.request(
            PeerRequest(
                "/instances",
                method="POST",
                headers={"Content-Type": "application/dicom"},
                body_file=path,
            )
            for path in paths
        )
        refused = [
            f"{path.name}: {a.status} {a.content[:200]!r}"
            for path, a in zip(paths, answers, strict=True)
            if a.status != 200
        ]
        if refused:
            raise RuntimeError(f"Orthanc refused: {refused}")

    def run_python(
        self, module: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``python -m module args`` inside the namespace, from this repository."""
        return self._in_namespace([sys.executable, "-m", module, *args], check=check)

    def _in_namespace(self, argv: list[str], *, check: bool) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["ip", "netns", "exec", self.namespace, *argv],
            capture_output=True,
            text=True,
            check=False,
            cwd=REPOSITORY,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:4])}… failed: {done.stderr.strip()[-2000:]}")
        return done
