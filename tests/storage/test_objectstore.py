"""The S3 object store against moto: single and multipart puts, aborts, ranges, deletes."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from botocore.config import Config

from storage.errors import ObjectNotFound, StorageUnavailable
from storage.objectstore import S3ObjectStore, body_is_protected_in_transit, build_s3_client
from storage.settings import StorageSettings
from tests.storage.conftest import MIB


class SourceFailed(RuntimeError):
    pass


def chunks_of(data: bytes, size: int = MIB) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_small_object_is_one_put(store: S3ObjectStore) -> None:
    assert store.put_stream("cases/a/small", [b"abc", b"def"]) == 6
    assert b"".join(store.get_stream("cases/a/small")) == b"abcdef"
    assert store.size("cases/a/small") == 6


def test_empty_object(store: S3ObjectStore) -> None:
    assert store.put_stream("cases/a/empty", []) == 0
    assert b"".join(store.get_stream("cases/a/empty")) == b""
    assert store.get_range("cases/a/empty", 0, 10) == (b"", 0)


@pytest.mark.parametrize("size", [2 * MIB, 2 * MIB + 1, 5 * MIB - 1])
def test_objects_under_one_part_are_one_put(store: S3ObjectStore, size: int) -> None:
    # On both sides of SMALL_OBJECT: straight from the chunks, or through a part buffer.
    data = os.urandom(size)
    assert store.put_stream("cases/a/mid", chunks_of(data, 64 * 1024 + 16)) == size
    head = store.client.head_object(Bucket=store.bucket, Key="cases/a/mid")
    assert "-" not in head["ETag"]  # not a multipart upload
    assert b"".join(store.get_stream("cases/a/mid")) == data


def test_large_object_goes_up_in_parts(store: S3ObjectStore) -> None:
    data = os.urandom(11 * MIB + 123)
    assert store.put_stream("cases/a/big", chunks_of(data)) == len(data)
    head = store.client.head_object(Bucket=store.bucket, Key="cases/a/big")
    assert head["ETag"].strip('"').endswith("-3")  # three parts of >= 5 MiB
    assert b"".join(store.get_stream("cases/a/big")) == data
    assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_failing_source_aborts_the_multipart_upload(store: S3ObjectStore) -> None:
    def source() -> Iterator[bytes]:
        yield os.urandom(6 * MIB)
        yield os.urandom(6 * MIB)
        raise SourceFailed("client went away")

    with pytest.raises(SourceFailed):
        store.put_stream("cases/a/broken", source())
    assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
    assert [info.key for info in store.list_objects("cases/")] == []


def test_range_reads(store: S3ObjectStore) -> None:
    data = bytes(range(256)) * 10
    store.put_stream("cases/a/r", [data])
    assert store.get_range("cases/a/r", 10, 20) == (data[10:20], len(data))
    assert store.get_range("cases/a/r", 2550, 9999) == (data[2550:], len(data))
    assert store.get_range("cases/a/r", 5000, 6000) == (b"", len(data))


def test_missing_object(store: S3ObjectStore) -> None:
    with pytest.raises(ObjectNotFound, match="cases/a/none"):
        store.get_stream("cases/a/none")
    with pytest.raises(ObjectNotFound):
        store.get_range("cases/a/none", 0, 10)


def test_delete_prefix_only_touches_that_prefix(store: S3ObjectStore) -> None:
    for key in ["cases/a/1", "cases/a/2", "cases/ab/1", "cases/b/1"]:
        store.put_stream(key, [b"x"])
    assert store.delete_prefix("cases/a/") == 2
    assert [info.key for info in store.list_objects("cases/")] == ["cases/ab/1", "cases/b/1"]
    with pytest.raises(ValueError, match="whole bucket"):
        store.delete_prefix("")


def test_ensure_bucket_creates_then_is_idempotent(
    aws: None, unit_settings: StorageSettings
) -> None:
    store = S3ObjectStore(build_s3_client(unit_settings), bucket="fresh-bucket")
    with pytest.raises(StorageUnavailable, match="fresh-bucket"):
        store.check()
    store.ensure_bucket()
    store.ensure_bucket()
    store.check()


def test_unreachable_endpoint_is_storage_unavailable() -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
        config=Config(connect_timeout=0.5, retries={"max_attempts": 1}),
    )
    store = S3ObjectStore(client, bucket="b")
    with pytest.raises(StorageUnavailable, match="unreachable"):
        store.check()
    with pytest.raises(StorageUnavailable):
        store.ensure_bucket()


@pytest.mark.parametrize(
    ("endpoint", "protected"),
    [
        (None, True),  # AWS itself: TLS
        ("https://s3.example.org", True),
        ("http://127.0.0.1:8333", True),
        ("http://[::1]:8333", True),
        ("http://localhost:8333", True),
        ("http://s3.internal:8333", False),
        ("http://10.0.0.5:8333", False),
    ],
)
def test_bodies_are_hashed_into_the_signature_only_on_an_open_network(
    endpoint: str | None, protected: bool
) -> None:
    assert body_is_protected_in_transit(endpoint) is protected
    settings = StorageSettings(endpoint_url=endpoint, embedded=False)
    client = build_s3_client(settings)
    assert client.meta.config.s3 is not None
    assert client.meta.config.s3["payload_signing_enabled"] is (not protected)
