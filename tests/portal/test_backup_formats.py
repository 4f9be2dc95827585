"""The backup's file formats on their own: the manifest's rules and the dump's COPY block."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from portal.backup.manifest import Manifest, ObjectEntry
from portal.backup.postgres import parse_case_keys

DIGEST = {"size": 1, "sha256": "0" * 64}


def manifest(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(),
        "schema_revision": "0005",
        "database": {"backend": "sqlite", "file": "database.sqlite3", "table_rows": {"cases": 1}},
        "keys": {"provider": "local", "file": "keyring.json", "kek_ids": ["1"], "case_keys": 1},
        "objects": {"included": True, "count": 0, "stored_bytes": 0},
        "files": {"database.sqlite3": DIGEST, "keyring.json": DIGEST, "objects.jsonl": DIGEST},
    }
    document.update(changes)
    return document


def test_a_manifest_names_only_checksummed_files_at_the_top_of_the_backup():
    assert Manifest.model_validate(manifest()).keys.file == "keyring.json"
    outside = manifest(database={"backend": "sqlite", "file": "../x.db", "table_rows": {}})
    unlisted = manifest(files={"database.sqlite3": DIGEST, "objects.jsonl": DIGEST})
    nested = manifest(files={**manifest()["files"], "objects/x": DIGEST})
    for document, problem in [
        (outside, "is not a file name of a backup"),
        (unlisted, "keyring.json has no checksum"),
        (nested, "is not a file name of a backup"),
        (manifest(schema_revision=""), "should match pattern"),
    ]:
        with pytest.raises(ValidationError, match=problem):
            Manifest.model_validate(document)


def test_object_entries_are_vault_object_keys_only():
    good = {"key": f"cases/{uuid.uuid4()}/{uuid.uuid4().hex}", "etag": "e", **DIGEST}
    assert ObjectEntry.model_validate(good).file == f"objects/{good['key']}"
    for key in ["../../etc/passwd", "cases/../x/" + "0" * 32, "other/c/" + "0" * 32]:
        with pytest.raises(ValidationError):
            ObjectEntry.model_validate({**good, "key": key})


def test_case_keys_are_read_from_a_dump_script_whatever_the_column_order():
    case_id = uuid.uuid4()
    script = "\n".join(
        [
            "SET client_encoding = 'UTF8';",
            "COPY public.case_keys (kek_id, wrapped_key, case_id, provider) FROM stdin;",
            f"1\t\\\\x01056c6f63616c\t{case_id}\tlocal",
            "\\.",
            "COPY public.other (x) FROM stdin;",
            "\\.",
        ]
    )
    (row,) = parse_case_keys(script)
    assert row.case_id == str(case_id) and row.wrapped_key == bytes.fromhex("01056c6f63616c")
    assert parse_case_keys("SET client_encoding = 'UTF8';\n") == []
