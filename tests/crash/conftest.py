"""Crash tests look at the whole bucket (scrub, orphan removal): each test gets its own."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from portal.settings import Settings
from storage.embedded import EmbeddedS3
from tests.fixtures.app import make_settings


@pytest.fixture
def settings(tmp_path: Path, database_url: str, seaweed: EmbeddedS3) -> Settings:
    """The suite's settings with a bucket of the test's own (created when the app starts)."""
    made = make_settings(tmp_path, database_url, seaweed)
    made.storage.bucket = f"crash-{uuid.uuid4().hex[:16]}"
    # Jobs run in the killed server only (never in the test's own app while it scrubs), and a
    # killed worker's job is taken over a second after its death.
    made.jobs_enabled = False
    made.jobs_lease_seconds = 1.0
    made.jobs_poll_seconds = 0.2
    return made
