"""Suite-wide fixtures: real SeaweedFS and PostgreSQL started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from storage.embedded import PORT_SPAN, EmbeddedS3, EmbeddedS3Error
from tests.services import IN_CI, PostgresServer, free_port_block, postgres_server, unavailable

pytest_plugins = [
    "tests.fixtures.logs",
    "tests.fixtures.app",
    "tests.fixtures.live",
    "tests.fixtures.smtp",
]


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedS3]:
    """A real ``weed mini`` on loopback for integration tests, shared by the session."""
    server = EmbeddedS3(
        data_dir=tmp_path_factory.mktemp("seaweedfs"),
        s3_port=free_port_block(PORT_SPAN),
        access_key="test-access",
        secret_key="test-secret-key-for-seaweed",
        bucket="portal-test",
    )
    try:
        server.start()
    except EmbeddedS3Error as exc:
        unavailable(f"SeaweedFS could not start: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL 15 server started by initdb/pg_ctl as user postgres."""
    with postgres_server() as server:
        yield server


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI nothing may skip: a skipped service-backed test would hide a missing service."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if IN_CI and skipped:
        reporter.write_line(
            f"CI: {len(skipped)} test(s) skipped; every test must run in CI", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
