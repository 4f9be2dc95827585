"""Storage fixtures: moto-backed AWS for unit tests, a fresh SeaweedFS bucket for integration."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from pydicom.data import get_testdata_file

from storage.embedded import EmbeddedS3
from storage.keys import LocalKeyring
from storage.objectstore import S3ObjectStore, build_s3_client
from storage.settings import StorageSettings
from storage.vault import Vault, build_vault

MIB = 1024 * 1024
SEGMENT = 4096  # the smallest segment size settings allow: many segments from little data
PATIENT_NAME = b"CompressedSamples^CT1"  # the patient in pydicom's CT_small.dcm


@pytest.fixture(scope="session")
def ct_small() -> bytes:
    """pydicom's CT_small.dcm: a real CT instance with 'DICM' magic and a patient name."""
    path = get_testdata_file("CT_small.dcm")
    assert isinstance(path, str), "pydicom's test data is not installed"
    data = Path(path).read_bytes()
    assert data[128:132] == b"DICM" and PATIENT_NAME in data
    return data


@pytest.fixture
def keyring_path(tmp_path: Path) -> Path:
    path = tmp_path / "var" / "keyring.json"
    LocalKeyring.ensure(path)
    return path


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's in-memory AWS (S3 and KMS), with throwaway credentials."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


@pytest.fixture
def unit_settings(keyring_path: Path) -> StorageSettings:
    return StorageSettings(
        endpoint_url=None,
        access_key_id="testing",
        bucket="unit-objects",
        keyring_path=keyring_path,
        segment_size=SEGMENT,
        part_size=5 * MIB,
    )


@pytest.fixture
def vault(aws: None, unit_settings: StorageSettings) -> Vault:
    """A vault over moto S3 and a fresh local keyring; bucket created."""
    built = build_vault(unit_settings)
    built.ensure_bucket()
    return built


@pytest.fixture
def store(vault: Vault) -> S3ObjectStore:
    return vault.store


@pytest.fixture
def kms_key_id(aws: None) -> str:
    kms = boto3.client("kms", region_name="us-east-1")
    return kms.create_key(Description="portal test KEK")["KeyMetadata"]["Arn"]


@pytest.fixture
def seaweed_settings(seaweed: EmbeddedS3, keyring_path: Path) -> StorageSettings:
    """Settings for the session's SeaweedFS with a bucket of this test's own."""
    return StorageSettings(
        endpoint_url=seaweed.endpoint_url,
        access_key_id=seaweed.access_key,
        secret_access_key=seaweed.secret_key,
        bucket=f"t-{uuid.uuid4().hex[:12]}",
        keyring_path=keyring_path,
        segment_size=64 * 1024,
        part_size=5 * MIB,
    )


@pytest.fixture
def seaweed_vault(seaweed_settings: StorageSettings) -> Iterator[Vault]:
    built = build_vault(seaweed_settings, s3_client=build_s3_client(seaweed_settings))
    built.ensure_bucket()
    yield built
    built.store.delete_prefix("cases/")
