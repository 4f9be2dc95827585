"""Scrub: verified, missing, corrupt and orphaned objects are all reported."""

from __future__ import annotations

import pytest

from storage.errors import StorageUnavailable
from storage.scrub import ExpectedObject, scrub
from storage.vault import Vault


def expect(case: str, wrapped: bytes, stored) -> ExpectedObject:
    return ExpectedObject(stored.object_key, case, wrapped, stored.sha256)


def test_scrub_reports_every_kind_of_problem(vault: Vault) -> None:
    wrapped = vault.new_case_key("case-1")
    good = vault.put(case_id="case-1", wrapped_key=wrapped, source=b"good" * 1000)
    gone = vault.put(case_id="case-1", wrapped_key=wrapped, source=b"gone" * 1000)
    rotten = vault.put(case_id="case-1", wrapped_key=wrapped, source=b"rotten" * 1000)
    wrong_hash = vault.put(case_id="case-1", wrapped_key=wrapped, source=b"hash" * 1000)
    orphan = vault.put(case_id="case-1", wrapped_key=wrapped, source=b"no row" * 1000)

    vault.delete(gone.object_key)
    client, bucket = vault.store.client, vault.store.bucket
    data = bytearray(client.get_object(Bucket=bucket, Key=rotten.object_key)["Body"].read())
    data[200] ^= 1
    client.put_object(Bucket=bucket, Key=rotten.object_key, Body=bytes(data))

    report = scrub(
        vault,
        [
            expect("case-1", wrapped, good),
            expect("case-1", wrapped, gone),
            expect("case-1", wrapped, rotten),
            ExpectedObject(wrong_hash.object_key, "case-1", wrapped, "0" * 64),
        ],
    )
    assert report.verified == [good.object_key]
    assert report.missing == [gone.object_key]
    assert [item.object_key for item in report.corrupt] == [
        rotten.object_key,
        wrong_hash.object_key,
    ]
    assert "segment 0" in report.corrupt[0].reason and "SHA-256" in report.corrupt[1].reason
    assert report.orphaned == [orphan.object_key]
    assert not report.clean
    assert report.summary() == "1 verified, 1 missing, 2 corrupt, 1 orphaned"


def test_scrub_of_a_consistent_bucket_is_clean(vault: Vault) -> None:
    wrapped = vault.new_case_key("case-1")
    rows = [
        expect("case-1", wrapped, vault.put(case_id="case-1", wrapped_key=wrapped, source=s))
        for s in (b"", b"a", b"b" * 50_000)
    ]
    report = scrub(vault, rows)
    assert report.clean and len(report.verified) == 3


def test_scrub_stops_when_storage_is_down(vault: Vault) -> None:
    vault.store.bucket = "vanished-bucket"
    with pytest.raises(StorageUnavailable):
        scrub(vault, [])
