"""The KMS key provider against moto's KMS."""

from __future__ import annotations

import boto3
import pytest

from storage.errors import IntegrityError, KeyUnavailable
from storage.keyprovider import WrappedKey
from storage.keys import KmsKeyProvider

CASE = {"case_id": "case-1"}


@pytest.fixture
def kms(aws: None):
    return boto3.client("kms", region_name="us-east-1")


def test_generate_and_unwrap_with_encryption_context(kms, kms_key_id: str) -> None:
    provider = KmsKeyProvider(kms, key_id=kms_key_id)
    data_key, wrapped = provider.generate_data_key(context=CASE)
    assert len(data_key) == 32
    envelope = WrappedKey.decode(wrapped)
    assert (envelope.provider, envelope.kek_id) == ("kms", kms_key_id)
    assert provider.unwrap(wrapped, context=CASE) == data_key


def test_wrong_case_context_is_refused(kms, kms_key_id: str) -> None:
    provider = KmsKeyProvider(kms, key_id=kms_key_id)
    _, wrapped = provider.generate_data_key(context=CASE)
    with pytest.raises(IntegrityError, match="another case"):
        provider.unwrap(wrapped, context={"case_id": "case-2"})


def test_rewrap_moves_to_a_new_kms_key(kms, kms_key_id: str) -> None:
    old = KmsKeyProvider(kms, key_id=kms_key_id)
    data_key, wrapped = old.generate_data_key(context=CASE)
    new_key_id = kms.create_key(Description="rotated KEK")["KeyMetadata"]["Arn"]
    new = KmsKeyProvider(kms, key_id=new_key_id)
    rewrapped = new.rewrap(wrapped, context=CASE)
    assert WrappedKey.decode(rewrapped).kek_id == new_key_id
    assert new.unwrap(rewrapped, context=CASE) == data_key


def test_unwrap_is_pinned_to_the_kms_key_named_in_the_envelope(kms, kms_key_id: str) -> None:
    provider = KmsKeyProvider(kms, key_id=kms_key_id)
    _, wrapped = provider.generate_data_key(context=CASE)
    other_key = kms.create_key(Description="another KEK")["KeyMetadata"]["Arn"]
    relabelled = WrappedKey("kms", other_key, WrappedKey.decode(wrapped).payload).encode()
    with pytest.raises(KeyUnavailable, match="AccessDenied"):
        provider.unwrap(relabelled, context=CASE)


def test_check_reports_missing_and_disabled_keys(kms, kms_key_id: str) -> None:
    KmsKeyProvider(kms, key_id=kms_key_id).check()
    with pytest.raises(KeyUnavailable, match="NotFound"):
        KmsKeyProvider(kms, key_id="alias/does-not-exist").check()
    kms.disable_key(KeyId=kms_key_id.rsplit("/", 1)[1])
    with pytest.raises(KeyUnavailable, match="disabled"):
        KmsKeyProvider(kms, key_id=kms_key_id).check()


def test_unreachable_kms_is_key_unavailable() -> None:
    from botocore.config import Config

    client = boto3.client(
        "kms",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(connect_timeout=0.5, retries={"max_attempts": 1}),
    )
    with pytest.raises(KeyUnavailable, match="unreachable"):
        KmsKeyProvider(client, key_id="alias/k").check()


def test_vault_with_kms_keys(kms, kms_key_id: str, unit_settings) -> None:
    from storage.vault import build_vault

    settings = unit_settings.model_copy(update={"key_provider": "kms", "kms_key_id": kms_key_id})
    vault = build_vault(settings, kms_client=kms)
    vault.ensure_bucket()
    vault.check()
    wrapped = vault.new_case_key("case-1")
    stored = vault.put(case_id="case-1", wrapped_key=wrapped, source=b"MR study" * 5000)
    vault.cache.clear()
    assert (
        vault.get(
            case_id="case-1",
            wrapped_key=wrapped,
            object_key=stored.object_key,
            sha256=stored.sha256,
        )
        == b"MR study" * 5000
    )
    rewrapped = vault.rewrap(wrapped, case_id="case-1")
    vault.cache.clear()
    assert (
        vault.read_range(
            case_id="case-1", wrapped_key=rewrapped, object_key=stored.object_key, start=8, end=16
        )
        == b"MR study"
    )
