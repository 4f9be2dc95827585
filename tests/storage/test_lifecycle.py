"""Key rotation with retirement, and crypto-shredding a case."""

from __future__ import annotations

import json
import os
from base64 import b64decode
from pathlib import Path

import pytest

from storage.cipher import ObjectBinding, decrypt_stream
from storage.errors import IntegrityError, KeyUnavailable
from storage.keys import LocalKeyring
from storage.settings import StorageSettings
from storage.vault import StoredObject, Vault, build_vault, parse_object_key


def test_rotation_then_retirement_keeps_every_object_readable(
    vault: Vault, unit_settings: StorageSettings, keyring_path: Path
) -> None:
    rows: dict[str, bytes] = {}
    objects: list[tuple[str, StoredObject, bytes]] = []
    for n in range(3):
        case = f"case-{n}"
        rows[case] = vault.new_case_key(case)
        for _ in range(2):
            data = os.urandom(10_000 + n)
            objects.append(
                (case, vault.put(case_id=case, wrapped_key=rows[case], source=data), data)
            )
    before = {info.key: info.size for info in vault.list_objects()}

    keyring = LocalKeyring(keyring_path)  # what `portal keys rotate` does, in its own process
    assert keyring.rotate() == 2
    old_rows = dict(rows)
    rows = {case: vault.rewrap(wrapped, case_id=case) for case, wrapped in rows.items()}
    keyring.retire(1)

    assert {info.key: info.size for info in vault.list_objects()} == before  # no re-encryption
    fresh = build_vault(unit_settings)  # a restarted portal: empty key cache, new keyring load
    for case, stored, data in objects:
        assert (
            fresh.get(
                case_id=case,
                wrapped_key=rows[case],
                object_key=stored.object_key,
                sha256=stored.sha256,
            )
            == data
        )
        with pytest.raises(KeyUnavailable, match="retired"):
            fresh.get(case_id=case, wrapped_key=old_rows[case], object_key=stored.object_key)
    material = [item["key"] for item in json.loads(keyring_path.read_text())["keys"]]
    assert material[0] is None and material[1] is not None


def test_erased_case_cannot_be_recovered_from_a_ciphertext_copy(
    vault: Vault, unit_settings: StorageSettings, keyring_path: Path, ct_small: bytes
) -> None:
    wrapped = vault.new_case_key("case-9")
    stored = vault.put(case_id="case-9", wrapped_key=wrapped, source=ct_small)
    other = vault.put(case_id="case-9", wrapped_key=wrapped, source=b"second file")
    keep_key = vault.new_case_key("case-10")
    kept = vault.put(case_id="case-10", wrapped_key=keep_key, source=b"another patient")
    backup = vault.store.client.get_object(Bucket=vault.store.bucket, Key=stored.object_key)[
        "Body"
    ].read()

    del wrapped  # the portal destroys the wrapped-key row
    assert vault.erase_case("case-9") == 2
    assert [info.key for info in vault.list_objects()] == [kept.object_key]
    assert other.object_key not in {info.key for info in vault.list_objects()}
    assert len(vault.cache) == 1  # only case-10's key is still cached

    _, object_id = parse_object_key(stored.object_key)
    binding = ObjectBinding("case-9", object_id)
    survivor = build_vault(unit_settings)
    candidates = [
        survivor.keys.generate_data_key(context={"case_id": "case-9"})[0] for _ in range(5)
    ]
    keyring = json.loads(keyring_path.read_text())
    candidates += [b64decode(item["key"]) for item in keyring["keys"] if item["key"]]
    candidates += [bytes(32), b"\xff" * 32]
    for candidate in candidates:
        with pytest.raises(IntegrityError, match="commitment"):
            decrypt_stream([backup], data_key=candidate, binding=binding)
    assert not any(chunk in backup for chunk in (b"DICM", b"CompressedSamples"))
