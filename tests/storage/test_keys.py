"""Local keyring, wrapped-key envelope, data-key cache and the provider factory."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from storage.errors import IntegrityError, KeyUnavailable, StorageError
from storage.keycache import DataKeyCache
from storage.keyprovider import WrappedKey
from storage.keys import KmsKeyProvider, LocalKeyring, build_key_provider
from storage.settings import StorageSettings

CASE = {"case_id": "case-1"}


def test_ensure_creates_a_private_keyring_once(tmp_path: Path) -> None:
    path = tmp_path / "var" / "keyring.json"
    assert LocalKeyring.ensure(path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_bytes()
    assert LocalKeyring.ensure(path) is False
    assert path.read_bytes() == first


def test_world_readable_keyring_is_refused(keyring_path: Path) -> None:
    keyring_path.chmod(0o644)
    with pytest.raises(KeyUnavailable, match="chmod 600"):
        LocalKeyring(keyring_path)


def test_missing_keyring_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(KeyUnavailable, match="portal init"):
        LocalKeyring(tmp_path / "absent.json")


def test_wrap_unwrap_round_trip_and_self_describing_envelope(keyring_path: Path) -> None:
    keyring = LocalKeyring(keyring_path)
    data_key, wrapped = keyring.generate_data_key(context=CASE)
    assert len(data_key) == 32 and data_key not in wrapped
    envelope = WrappedKey.decode(wrapped)
    assert (envelope.provider, envelope.kek_id) == ("local", "1")
    assert keyring.unwrap(wrapped, context=CASE) == data_key


def test_wrapped_key_is_bound_to_its_case(keyring_path: Path) -> None:
    keyring = LocalKeyring(keyring_path)
    _, wrapped = keyring.generate_data_key(context=CASE)
    with pytest.raises(IntegrityError, match="another case"):
        keyring.unwrap(wrapped, context={"case_id": "case-2"})


def test_other_keyring_cannot_unwrap(keyring_path: Path, tmp_path: Path) -> None:
    other_path = tmp_path / "other.json"
    LocalKeyring.ensure(other_path)
    _, wrapped = LocalKeyring(keyring_path).generate_data_key(context=CASE)
    with pytest.raises(IntegrityError, match="different keyring"):
        LocalKeyring(other_path).unwrap(wrapped, context=CASE)


def test_corrupt_wrapped_key_is_rejected(keyring_path: Path) -> None:
    keyring = LocalKeyring(keyring_path)
    _, wrapped = keyring.generate_data_key(context=CASE)
    damaged = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    with pytest.raises(IntegrityError):
        keyring.unwrap(damaged, context=CASE)
    with pytest.raises(IntegrityError, match="malformed"):
        keyring.unwrap(b"\x01\x05loc", context=CASE)


def test_rotate_rewrap_retire(keyring_path: Path) -> None:
    keyring = LocalKeyring(keyring_path)
    data_key, old = keyring.generate_data_key(context=CASE)
    assert keyring.rotate() == 2
    new = keyring.rewrap(old, context=CASE)
    assert WrappedKey.decode(new).kek_id == "2"
    keyring.retire(1)
    assert keyring.unwrap(new, context=CASE) == data_key
    with pytest.raises(KeyUnavailable, match="retired"):
        keyring.unwrap(old, context=CASE)
    saved = json.loads(keyring_path.read_text())
    assert saved["active"] == 2
    assert [item["key"] is None for item in saved["keys"]] == [True, False]
    assert stat.S_IMODE(keyring_path.stat().st_mode) == 0o600
    assert [(v.version, v.retired is not None, v.key) for v in keyring.versions()] == [
        (1, True, None),
        (2, False, None),
    ]


def test_active_version_cannot_be_retired(keyring_path: Path) -> None:
    with pytest.raises(StorageError, match="active"):
        LocalKeyring(keyring_path).retire(1)


def test_a_running_keyring_sees_a_rotation_made_by_another_process(keyring_path: Path) -> None:
    server, cli = LocalKeyring(keyring_path), LocalKeyring(keyring_path)
    cli.rotate()
    data_key, wrapped = cli.generate_data_key(context=CASE)
    assert server.unwrap(wrapped, context=CASE) == data_key
    _, fresh = server.generate_data_key(context=CASE)
    assert WrappedKey.decode(fresh).kek_id == "2"  # new keys go under the new version


def test_keyring_from_environment_is_read_only(keyring_path: Path) -> None:
    settings = StorageSettings(keyring=SecretStr(keyring_path.read_text()))
    keyring = build_key_provider(settings)
    assert isinstance(keyring, LocalKeyring)
    data_key, wrapped = keyring.generate_data_key(context=CASE)
    assert LocalKeyring(keyring_path).unwrap(wrapped, context=CASE) == data_key
    with pytest.raises(StorageError, match="read-only"):
        keyring.rotate()


def test_factory_picks_kms_and_requires_a_key_id(keyring_path: Path) -> None:
    with pytest.raises(KeyUnavailable, match="KMS_KEY_ID"):
        build_key_provider(StorageSettings(key_provider="kms"))
    provider = build_key_provider(
        StorageSettings(key_provider="kms", kms_key_id="alias/x"),
        kms_client=object(),  # type: ignore[arg-type]
    )
    assert isinstance(provider, KmsKeyProvider)
    assert isinstance(build_key_provider(StorageSettings(keyring_path=keyring_path)), LocalKeyring)


def test_keyring_check_notices_a_deleted_file(keyring_path: Path) -> None:
    keyring = LocalKeyring(keyring_path)
    keyring.check()
    keyring_path.unlink()
    with pytest.raises(KeyUnavailable, match="does not exist"):
        keyring.check()


def test_wrapped_key_from_another_provider_is_named(keyring_path: Path) -> None:
    foreign = WrappedKey(provider="kms", kek_id="arn:x", payload=b"blob").encode()
    with pytest.raises(KeyUnavailable, match="'kms'"):
        LocalKeyring(keyring_path).unwrap(foreign, context=CASE)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_key_cache_expires_and_evicts_least_recently_used() -> None:
    clock = FakeClock()
    cache = DataKeyCache(max_entries=2, ttl=10, clock=clock)
    cache.put("a", b"wa", b"A")
    cache.put("b", b"wb", b"B")
    assert cache.get("a", b"wa") == b"A"  # a is now most recent
    cache.put("c", b"wc", b"C")
    assert cache.get("b", b"wb") is None
    assert cache.get("a", b"wa") == b"A"
    clock.now = 10.5
    assert cache.get("a", b"wa") is None
    assert cache.get("a", b"wrong wrapped key") is None


def test_key_cache_forgets_a_case() -> None:
    cache = DataKeyCache()
    cache.put("a", b"w1", b"A1")
    cache.put("a", b"w2", b"A2")
    cache.put("b", b"w3", b"B")
    cache.forget_case("a")
    assert len(cache) == 1 and cache.get("b", b"w3") == b"B"
