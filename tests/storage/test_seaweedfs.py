"""The vault against a real SeaweedFS (``weed mini``): multipart, aborts, ranges, disk contents."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.embedded import EmbeddedS3
from storage.errors import StorageUnavailable
from storage.objectstore import build_s3_client
from storage.scrub import ExpectedObject, scrub
from storage.settings import StorageSettings
from storage.vault import Vault, build_vault
from tests.storage.conftest import MIB, PATIENT_NAME

pytestmark = pytest.mark.seaweedfs


def no_uploads_left(vault: Vault) -> bool:
    answer = vault.store.client.list_multipart_uploads(Bucket=vault.store.bucket)
    return answer.get("Uploads", []) == []


def test_multipart_round_trip(seaweed_vault: Vault) -> None:
    data = os.urandom(12 * MIB + 4321)  # three parts of the 5 MiB part size
    wrapped = seaweed_vault.new_case_key("case-1")
    stored = seaweed_vault.put(
        case_id="case-1",
        wrapped_key=wrapped,
        source=(data[i : i + MIB] for i in range(0, len(data), MIB)),
    )
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert seaweed_vault.store.size(stored.object_key) == stored.stored_size
    digest = hashlib.sha256()
    for chunk in seaweed_vault.open(
        case_id="case-1", wrapped_key=wrapped, object_key=stored.object_key, sha256=stored.sha256
    ):
        digest.update(chunk)
    assert digest.hexdigest() == stored.sha256
    assert no_uploads_left(seaweed_vault)


def test_failure_mid_stream_leaves_no_parts_and_no_object(seaweed_vault: Vault) -> None:
    def interrupted() -> Iterator[bytes]:
        for _ in range(11):
            yield os.urandom(MIB)  # two parts are on their way before the failure
        raise ConnectionResetError("upload interrupted")

    wrapped = seaweed_vault.new_case_key("case-1")
    with pytest.raises(ConnectionResetError):
        seaweed_vault.put(case_id="case-1", wrapped_key=wrapped, source=interrupted())
    assert no_uploads_left(seaweed_vault)
    assert list(seaweed_vault.list_objects()) == []


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (0, 10),
        (65_530, 65_550),
        (65_536 * 2 - 1, 65_536 * 5 + 1),
        (300_000, 300_005),
        (299_999, 10**9),
    ],
)
def test_range_reads(seaweed_vault: Vault, start: int, end: int) -> None:
    data = os.urandom(300_005)  # four full 64 KiB segments and a partial fifth
    wrapped = seaweed_vault.new_case_key("case-1")
    stored = seaweed_vault.put(case_id="case-1", wrapped_key=wrapped, source=data)
    got = seaweed_vault.read_range(
        case_id="case-1", wrapped_key=wrapped, object_key=stored.object_key, start=start, end=end
    )
    assert got == data[start:end]


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and path.name != "weed.log" and needle in path.read_bytes()
    ]


def test_no_plaintext_reaches_the_bucket_or_the_disk(
    seaweed: EmbeddedS3, seaweed_vault: Vault, ct_small: bytes
) -> None:
    wrapped = seaweed_vault.new_case_key("case-1")
    stored = [
        seaweed_vault.put(case_id="case-1", wrapped_key=wrapped, source=ct_small) for _ in range(3)
    ]
    client, bucket = seaweed_vault.store.client, seaweed_vault.store.bucket
    for item in stored:
        data = client.get_object(Bucket=bucket, Key=item.object_key)["Body"].read()
        assert b"DICM" not in data and PATIENT_NAME not in data
    # Control: the stored (encrypted) bytes are on disk, so the scan below looks in the right place.
    header = client.get_object(Bucket=bucket, Key=stored[0].object_key)["Body"].read()[:81]
    assert _files_containing(seaweed.data_dir, header)
    assert _files_containing(seaweed.data_dir, PATIENT_NAME) == []
    assert _files_containing(seaweed.data_dir, ct_small[128:192]) == []


def test_erase_case_and_scrub(seaweed_vault: Vault) -> None:
    gone, kept = seaweed_vault.new_case_key("case-gone"), seaweed_vault.new_case_key("case-kept")
    for _ in range(3):
        seaweed_vault.put(case_id="case-gone", wrapped_key=gone, source=b"erase me")
    keep = seaweed_vault.put(case_id="case-kept", wrapped_key=kept, source=b"keep me")
    orphan = seaweed_vault.put(case_id="case-kept", wrapped_key=kept, source=b"no row")
    assert seaweed_vault.erase_case("case-gone") == 3
    report = scrub(seaweed_vault, [ExpectedObject(keep.object_key, "case-kept", kept, keep.sha256)])
    assert report.verified == [keep.object_key]
    assert report.orphaned == [orphan.object_key]
    assert not report.missing and not report.corrupt


def test_readiness(seaweed_vault: Vault, seaweed_settings: StorageSettings) -> None:
    seaweed_vault.check()
    closed = seaweed_settings.model_copy(update={"endpoint_url": "http://127.0.0.1:9"})
    down = build_vault(closed, s3_client=build_s3_client(closed))
    with pytest.raises(StorageUnavailable, match="unreachable"):
        down.check()
