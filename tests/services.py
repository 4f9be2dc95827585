"""Real services the suite starts itself: SeaweedFS S3 and PostgreSQL 15 on loopback."""

from __future__ import annotations

import os
import pwd
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from storage.embedded import EmbeddedS3

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def free_port_block(span: int = 1, start: int = 20000, stop: int = 32768) -> int:
    """Return the first port of ``span`` consecutive free loopback ports.

    The search starts at a random place: two calls in a row must not hand out the same port
    when nothing was bound between them (two replicas started one after the other). Ports stay
    below Linux's ephemeral range (32768-60999): a process started later could otherwise find
    its port taken by some connection's local end (seen with the SeaweedFS cluster)."""
    port = start + random.randrange(stop - start - span)
    for _ in range(2000):
        if all(port_free(port + i) for i in range(span)):
            return port
        port = start + (port + span * 3 - start) % (stop - start - span)
    raise RuntimeError("no free block of loopback ports")


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def unavailable(reason: str) -> None:
    """Skip a service-backed test locally; in CI a missing service is a failure."""
    if IN_CI:
        pytest.fail(f"CI must provide this service: {reason}")
    pytest.skip(reason)


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    socket_dir: Path

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def admin_url(self) -> str:
        return self.url("postgres")


def _pg_bin(name: str) -> str | None:
    for version_dir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        candidate = version_dir / name
        if candidate.exists():
            return str(candidate)
    return shutil.which(name)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """initdb + pg_ctl as user postgres in a fresh temp dir, listening on a loopback port.

    The directory is made directly under the system temp dir because pytest's own temp dirs
    are private to root and the server runs as user postgres.
    """
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        unavailable("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    assert initdb is not None and pg_ctl is not None
    try:
        postgres_user = pwd.getpwnam("postgres")
    except KeyError:
        unavailable("no 'postgres' system user to run the server as")
        raise
    base_dir = Path(tempfile.mkdtemp(prefix="portal-pg-"))
    data_dir = base_dir / "data"
    os.chown(base_dir, postgres_user.pw_uid, postgres_user.pw_gid)
    base_dir.chmod(0o700)

    def as_postgres(*argv: str) -> None:
        prefix: list[str] = (
            [] if os.getuid() == postgres_user.pw_uid else ["runuser", "-u", "postgres", "--"]
        )
        done = subprocess.run([*prefix, *argv], capture_output=True, cwd=base_dir, check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"{Path(argv[0]).name} failed: {done.stderr.decode(errors='replace')}"
            )

    port = free_port_block()
    as_postgres(
        initdb, "-D", str(data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
    )
    options = (
        f"-h 127.0.0.1 -p {port} -k {base_dir} -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=200"
    )
    as_postgres(
        pg_ctl,
        "-D",
        str(data_dir),
        "-l",
        str(base_dir / "server.log"),
        "-o",
        options,
        "-w",
        "-t",
        "60",
        "start",
    )
    try:
        yield PostgresServer(host="127.0.0.1", port=port, user="postgres", socket_dir=base_dir)
    finally:
        as_postgres(pg_ctl, "-D", str(data_dir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base_dir, ignore_errors=True)


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def s3(seaweed: EmbeddedS3) -> Any:
    """A plain boto3 client on the test SeaweedFS, to look at the bucket as an intruder would."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=seaweed.endpoint_url,
        aws_access_key_id=seaweed.access_key,
        aws_secret_access_key=seaweed.secret_key,
        region_name="us-east-1",
    )
