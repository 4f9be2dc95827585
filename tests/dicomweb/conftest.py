"""The samples and the Orthanc peer holding them, started once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dicomweb import samples
from tests.dicomweb.peer import OrthancPeer, missing_peer
from tests.services import unavailable


@pytest.fixture(scope="session")
def sample_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return samples.sample_files(tmp_path_factory.mktemp("dicomweb-samples"))


@pytest.fixture(scope="session")
def catalogue(sample_paths: list[Path]) -> samples.Catalogue:
    return samples.Catalogue(sample_paths)


@pytest.fixture(scope="session")
def peer(
    tmp_path_factory: pytest.TempPathFactory, sample_paths: list[Path]
) -> Iterator[OrthancPeer]:
    """Orthanc + DICOMweb in its own network namespace, holding the samples (POST /instances)."""
    reason = missing_peer()
    if reason:
        unavailable(reason)
    with OrthancPeer(tmp_path_factory.mktemp("orthanc-peer")) as running:
        running.store(sample_paths)
        yield running
