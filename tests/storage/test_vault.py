"""The vault end to end over moto S3 and a real local keyring."""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Iterator

import pytest

from storage.cipher import HEADER_BYTES, TAG_BYTES
from storage.errors import IntegrityError, KeyUnavailable, ObjectNotFound, StorageUnavailable
from storage.keys import LocalKeyring
from storage.settings import StorageSettings
from storage.vault import StoredObject, Vault, build_vault
from tests.storage.conftest import MIB, SEGMENT

SEALED = SEGMENT + TAG_BYTES


def raw(vault: Vault, key: str) -> bytes:
    return vault.store.client.get_object(Bucket=vault.store.bucket, Key=key)["Body"].read()


def overwrite(vault: Vault, key: str, data: bytes) -> None:
    vault.store.client.put_object(Bucket=vault.store.bucket, Key=key, Body=data)


def read(vault: Vault, case: str, wrapped: bytes, stored: StoredObject) -> bytes:
    return vault.get(
        case_id=case, wrapped_key=wrapped, object_key=stored.object_key, sha256=stored.sha256
    )


def test_put_returns_server_key_size_and_sha256(vault: Vault, ct_small: bytes) -> None:
    wrapped = vault.new_case_key("case-1")
    stored = vault.put(case_id="case-1", wrapped_key=wrapped, source=io.BytesIO(ct_small))
    assert re.fullmatch(r"cases/case-1/[0-9a-f]{32}", stored.object_key)
    assert stored.size == len(ct_small)
    assert stored.sha256 == hashlib.sha256(ct_small).hexdigest()
    assert stored.stored_size == len(raw(vault, stored.object_key)) > stored.size
    assert read(vault, "case-1", wrapped, stored) == ct_small


@pytest.mark.parametrize(
    "source",
    [lambda d: d, lambda d: io.BytesIO(d), lambda d: iter([d[:7], b"", d[7:]])],
    ids=["bytes", "file object", "iterator"],
)
def test_every_source_kind_round_trips(vault: Vault, source) -> None:
    data = os.urandom(3 * SEGMENT + 5)
    wrapped = vault.new_case_key("case-1")
    stored = vault.put(case_id="case-1", wrapped_key=wrapped, source=source(data))
    assert read(vault, "case-1", wrapped, stored) == data


@pytest.mark.parametrize(
    "size", [0, SEGMENT, 5 * SEGMENT], ids=["empty", "1 segment", "5 segments"]
)
def test_empty_and_whole_segment_objects(vault: Vault, size: int) -> None:
    data = os.urandom(size)
    wrapped = vault.new_case_key("case-1")
    stored = vault.put(case_id="case-1", wrapped_key=wrapped, source=data)
    assert stored.stored_size == HEADER_BYTES + size + max(1, size // SEGMENT) * TAG_BYTES
    assert read(vault, "case-1", wrapped, stored) == data
    assert vault.size(stored.object_key) == size


def test_large_put_is_multipart_and_streams(vault: Vault) -> None:
    data = os.urandom(11 * MIB)
    wrapped = vault.new_case_key("case-1")
    stored = vault.put(
        case_id="case-1",
        wrapped_key=wrapped,
        source=(data[i : i + MIB] for i in range(0, len(data), MIB)),
    )
    assert stored.size == len(data)
    chunks = list(vault.open(case_id="case-1", wrapped_key=wrapped, object_key=stored.object_key))
    assert max(len(chunk) for chunk in chunks) == SEGMENT
    assert b"".join(chunks) == data


def test_failed_upload_leaves_no_object_and_no_parts(vault: Vault) -> None:
    def dropped_connection() -> Iterator[bytes]:
        yield os.urandom(12 * MIB)
        raise ConnectionResetError("browser went away")

    wrapped = vault.new_case_key("case-1")
    with pytest.raises(ConnectionResetError):
        vault.put(case_id="case-1", wrapped_key=wrapped, source=dropped_connection())
    assert list(vault.list_objects()) == []
    assert (
        vault.store.client.list_multipart_uploads(Bucket=vault.store.bucket).get("Uploads", [])
        == []
    )


def test_sha256_mismatch_is_reported_at_the_end_of_a_full_read(vault: Vault) -> None:
    wrapped = vault.new_case_key("case-1")
    stored = vault.put(case_id="case-1", wrapped_key=wrapped, source=b"x" * 10_000)
    with pytest.raises(IntegrityError, match="SHA-256"):
        vault.get(
            case_id="case-1", wrapped_key=wrapped, object_key=stored.object_key, sha256="0" * 64
        )


RANGES = [
    (0, 1),
    (0, SEGMENT),
    (SEGMENT - 1, SEGMENT + 1),
    (SEGMENT, 2 * SEGMENT),
    (123, 3 * SEGMENT + 7),
    (4 * SEGMENT, 4 * SEGMENT + 100),  # the last, partial segment
    (4 * SEGMENT + 99, 4 * SEGMENT + 100),
    (4 * SEGMENT + 50, 10**9),  # end clamped to the size
    (4 * SEGMENT + 100, 4 * SEGMENT + 200),  # starts at the end: nothing
    (5, 5),
]


@pytest.mark.parametrize(("start", "end"), RANGES)
def test_range_reads(vault: Vault, start: int, end: int) -> None:
    data = os.urandom(4 * SEGMENT + 100)
    wrapped = vault.new_case_key("case-1")
    stored = vault.put(case_id="case-1", wrapped_key=wrapped, source=data)
    got = vault.read_range(
        case_id="case-1", wrapped_key=wrapped, object_key=stored.object_key, start=start, end=end
    )
    assert got == data[start:end]


def test_range_read_of_tampered_segment_is_rejected(vault: Vault) -> None:
    wrapped = vault.new_case_key("case-1")
    stored = vault.put(case_id="case-1", wrapped_key=wrapped, source=os.urandom(3 * SEGMENT))
    data = bytearray(raw(vault, stored.object_key))
    data[HEADER_BYTES + SEALED + 10] ^= 0x80
    overwrite(vault, stored.object_key, bytes(data))
    with pytest.raises(IntegrityError, match="segment 1"):
        vault.read_range(
            case_id="case-1",
            wrapped_key=wrapped,
            object_key=stored.object_key,
            start=SEGMENT,
            end=SEGMENT + 1,
        )


def _flip(at: int):
    def change(data: bytes) -> bytes:
        changed = bytearray(data)
        changed[at if at >= 0 else len(data) + at] ^= 0x04
        return bytes(changed)

    return change


def _swap_first_segments(data: bytes) -> bytes:
    first, second = (
        data[HEADER_BYTES : HEADER_BYTES + SEALED],
        data[HEADER_BYTES + SEALED : HEADER_BYTES + 2 * SEALED],
    )
    return data[:HEADER_BYTES] + second + first + data[HEADER_BYTES + 2 * SEALED :]


STORED_TAMPERING = {
    "bit flip in header": _flip(10),
    "bit flip in segment": _flip(HEADER_BYTES + 100),
    "bit flip in tag": _flip(HEADER_BYTES + SEALED - 3),
    "bit flip in final tag": _flip(-1),
    "truncated at a segment boundary": lambda d: d[: HEADER_BYTES + 2 * SEALED],
    "truncated inside a segment": lambda d: d[: HEADER_BYTES + 2 * SEALED + 1000],
    "truncated to the header": lambda d: d[:HEADER_BYTES],
    "appended data": lambda d: d + b"\x00" * 32,
    "segments reordered": _swap_first_segments,
}


@pytest.mark.parametrize("case", sorted(STORED_TAMPERING))
def test_tampered_objects_are_rejected(vault: Vault, case: str) -> None:
    wrapped = vault.new_case_key("case-1")
    stored = vault.put(case_id="case-1", wrapped_key=wrapped, source=os.urandom(3 * SEGMENT + 500))
    overwrite(vault, stored.object_key, STORED_TAMPERING[case](raw(vault, stored.object_key)))
    with pytest.raises(IntegrityError):
        read(vault, "case-1", wrapped, stored)


def test_swapped_objects_in_the_same_case_are_rejected(vault: Vault) -> None:
    wrapped = vault.new_case_key("case-1")
    a = vault.put(case_id="case-1", wrapped_key=wrapped, source=b"report A" * 100)
    b = vault.put(case_id="case-1", wrapped_key=wrapped, source=b"report B" * 100)
    a_bytes, b_bytes = raw(vault, a.object_key), raw(vault, b.object_key)
    overwrite(vault, a.object_key, b_bytes)
    overwrite(vault, b.object_key, a_bytes)
    for stored in (a, b):
        with pytest.raises(IntegrityError, match="commitment"):
            read(vault, "case-1", wrapped, stored)


def test_object_moved_from_another_case_is_rejected(vault: Vault) -> None:
    mine, theirs = vault.new_case_key("case-1"), vault.new_case_key("case-2")
    target = vault.put(case_id="case-1", wrapped_key=mine, source=b"mine" * 100)
    foreign = vault.put(case_id="case-2", wrapped_key=theirs, source=b"theirs" * 100)
    overwrite(vault, target.object_key, raw(vault, foreign.object_key))
    with pytest.raises(IntegrityError, match="commitment"):
        read(vault, "case-1", mine, target)


def test_wrong_case_id_is_rejected(vault: Vault) -> None:
    wrapped = vault.new_case_key("case-1")
    stored = vault.put(case_id="case-1", wrapped_key=wrapped, source=b"data")
    with pytest.raises(IntegrityError, match="does not belong to case"):
        vault.get(case_id="case-2", wrapped_key=wrapped, object_key=stored.object_key)
    vault.cache.clear()
    moved = stored.object_key.replace("case-1", "case-2")
    with pytest.raises(IntegrityError, match="another case"):
        vault.get(case_id="case-2", wrapped_key=wrapped, object_key=moved)


def test_wrong_kek_is_rejected(vault: Vault, unit_settings: StorageSettings, tmp_path) -> None:
    wrapped = vault.new_case_key("case-1")
    stored = vault.put(case_id="case-1", wrapped_key=wrapped, source=b"data")
    other_keyring = tmp_path / "other-keyring.json"
    LocalKeyring.ensure(other_keyring)
    stranger = build_vault(unit_settings.model_copy(update={"keyring_path": other_keyring}))
    with pytest.raises(IntegrityError, match="different keyring"):
        read(stranger, "case-1", wrapped, stored)


def test_wrong_data_key_of_same_case_is_rejected(vault: Vault) -> None:
    wrapped = vault.new_case_key("case-1")
    stored = vault.put(case_id="case-1", wrapped_key=wrapped, source=b"data")
    impostor = vault.new_case_key("case-1")
    with pytest.raises(IntegrityError, match="commitment"):
        read(vault, "case-1", impostor, stored)


def test_missing_object(vault: Vault) -> None:
    wrapped = vault.new_case_key("case-1")
    with pytest.raises(ObjectNotFound):
        vault.open(case_id="case-1", wrapped_key=wrapped, object_key="cases/case-1/" + "a" * 32)


@pytest.mark.parametrize("case_id", ["", "../x", "a/b", "a b", "x" * 129])
def test_unsafe_case_ids_are_refused(vault: Vault, case_id: str) -> None:
    with pytest.raises(ValueError, match="case id"):
        vault.new_case_key(case_id)


def test_bucket_holds_no_plaintext(vault: Vault, ct_small: bytes) -> None:
    wrapped = vault.new_case_key("case-1")
    vault.put(case_id="case-1", wrapped_key=wrapped, source=ct_small)
    vault.put(case_id="case-1", wrapped_key=wrapped, source=ct_small * 3)
    for info in vault.list_objects():
        data = raw(vault, info.key)
        assert b"DICM" not in data and b"CompressedSamples" not in data


class CountingKeyring(LocalKeyring):
    unwraps = 0

    def unwrap(self, wrapped: bytes, *, context) -> bytes:
        self.unwraps += 1
        return super().unwrap(wrapped, context=context)


def test_data_keys_are_cached_not_unwrapped_per_read(vault: Vault, keyring_path) -> None:
    keyring = CountingKeyring(keyring_path)
    counted = Vault(keys=keyring, store=vault.store, segment_size=SEGMENT)
    _, wrapped = keyring.generate_data_key(context={"case_id": "case-1"})
    stored = counted.put(case_id="case-1", wrapped_key=wrapped, source=b"data")
    for _ in range(3):
        assert read(counted, "case-1", wrapped, stored) == b"data"
    assert keyring.unwraps == 1
    counted.cache.clear()
    read(counted, "case-1", wrapped, stored)
    assert keyring.unwraps == 2


def test_check_reports_storage_and_keys(vault: Vault, keyring_path) -> None:
    vault.check()
    keyring_path.unlink()
    with pytest.raises(KeyUnavailable):
        vault.check()
    vault.store.bucket = "no-such-bucket"
    with pytest.raises(StorageUnavailable, match="no-such-bucket"):
        vault.check()
