"""Distributed parts for the scale tests: a SeaweedFS cluster of separate processes, one
PostgreSQL database and several ``portal serve`` replicas sharing them.

Test modules here run on PostgreSQL only (``pytestmark`` parametrizes ``database_url``
indirectly): replicas share one PostgreSQL, the only shape a cluster runs in."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from portal.app import create_app
from portal.settings import Settings
from tests.cluster import SeaweedCluster
from tests.fixtures.app import make_settings
from tests.fixtures.live import ServerProcess


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedCluster]:
    secret = secrets.token_urlsafe(24)
    for attempt in range(3):  # a port of the block may be taken while the ten listeners start
        started = SeaweedCluster(tmp_path_factory.mktemp("seaweed-cluster"), "portal-scale", secret)
        try:
            started.start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, cluster: SeaweedCluster) -> Settings:
    """A bucket of the test's own on the shared cluster (created when the app starts)."""
    made = make_settings(tmp_path, database_url, cluster)
    made.storage.bucket = f"scale-{uuid.uuid4().hex[:16]}"
    return made


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """An in-process app on the same database and bucket, for looking behind the replicas."""
    return create_app(settings)


@pytest.fixture
def replicas(settings: Settings, tmp_path: Path, app: FastAPI) -> Iterator[list[ServerProcess]]:
    """Two ``portal serve`` processes on the same database, bucket and keyring."""
    servers = [ServerProcess(settings, tmp_path / f"replica-{name}.log") for name in "ab"]
    for server in servers:
        server.env["PORTAL_SWEEP_ENABLED"] = "false"  # the tests run housekeeping themselves
        server.start()
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()
