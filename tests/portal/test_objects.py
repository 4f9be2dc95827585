"""Case objects through the vault against real SeaweedFS: rotation, scrub and crypto-shredding."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, SQLModel, select

from portal import case_erasure as erasure
from portal import storage_commands
from portal.audit import sealer
from portal.audit import service as audit_service
from portal.audit.models import AuditEvent
from portal.cases.models import Case
from portal.objects import service as objects
from portal.objects.models import CaseKey, StoredObject
from portal.settings import Settings
from storage.embedded import EmbeddedS3
from storage.errors import IntegrityError
from storage.vault import Vault, build_vault
from tests.fixtures.app import Accounts, make_settings, open_case
from tests.services import s3

MARKER = b"DICM patient IVANOVA^OLGA marker "


@pytest.fixture
def own_bucket(tmp_path: Path, database_url: str, seaweed: EmbeddedS3) -> Settings:
    """Settings with a bucket of this test's own, so scrubs see only this test's objects."""
    settings = make_settings(tmp_path, database_url, seaweed)
    settings.storage.bucket = f"t-{uuid.uuid4().hex[:16]}"
    return settings


@pytest.fixture
def app(own_bucket: Settings) -> FastAPI:
    from portal.app import create_app

    return create_app(own_bucket)


def new_case(client: TestClient, accounts: Accounts) -> uuid.UUID:
    return uuid.UUID(open_case(client, accounts.patient())["id"])


def put(db: Session, vault: Vault, case_id: uuid.UUID, payload: bytes) -> StoredObject:
    with objects.staged(vault) as staging:
        row = objects.store(
            session=db, vault=vault, case_id=case_id, source=io.BytesIO(payload), staging=staging
        )
        db.commit()
    return row


def read(db: Session, vault: Vault, row: StoredObject) -> bytes:
    return b"".join(objects.open_object(session=db, vault=vault, row=row))


def test_store_and_read_back(client: TestClient, accounts: Accounts, app: FastAPI, db: Session):
    vault: Vault = app.state.vault
    case_id = new_case(client, accounts)
    payload = MARKER * 50_000
    row = put(db, vault, case_id, payload)
    assert row.size == len(payload) and row.stored_size > row.size
    assert read(db, vault, row) == payload
    assert (
        objects.read_range(session=db, vault=vault, row=row, start=100_000, end=100_050)
        == payload[100_000:100_050]
    )
    key = db.get(CaseKey, case_id)
    assert key is not None and key.provider == "local" and key.kek_id == "1"


def test_a_failed_unit_of_work_leaves_no_object(client, accounts, app, db, own_bucket, seaweed):
    vault: Vault = app.state.vault
    case_id = new_case(client, accounts)
    with pytest.raises(RuntimeError), objects.staged(vault) as staging:
        objects.store(session=db, vault=vault, case_id=case_id, source=b"x" * 1000, staging=staging)
        raise RuntimeError("the database write failed")
    db.rollback()
    listed = s3(seaweed).list_objects_v2(
        Bucket=own_bucket.storage.bucket, Prefix=f"cases/{case_id}/"
    )
    # What remains is the key share of the case's sealed text, made when the case was opened.
    share = db.exec(select(CaseKey).where(CaseKey.case_id == case_id)).one().text_share_id
    kept = db.exec(select(StoredObject.object_key).where(StoredObject.id == share)).one()
    assert [item["Key"] for item in listed.get("Contents", [])] == [kept]


def test_rotation_then_retirement_keeps_every_object_readable(
    client, accounts, app, db, own_bucket, capsys
):
    vault: Vault = app.state.vault
    rows = [put(db, vault, new_case(client, accounts), MARKER * (i + 1) * 1000) for i in range(3)]
    assert storage_commands.retire_kek(own_bucket, 1) == 1
    assert "still wrapped under version 1" in capsys.readouterr().out

    assert storage_commands.rotate_keys(own_bucket) == 0
    assert "re-wrapped 3 case key(s)" in capsys.readouterr().out
    assert storage_commands.retire_kek(own_bucket, 1) == 0

    db.expire_all()
    assert {key.kek_id for key in db.exec(select(CaseKey)).all()} == {"2"}
    fresh = build_vault(own_bucket.storage)  # another process, reading the rotated keyring
    for i, row in enumerate(rows):
        assert read(db, fresh, row) == MARKER * (i + 1) * 1000
    actions = [e.action for e in db.exec(select(AuditEvent)).all()]
    assert "keys.rotate" in actions and "keys.retire" in actions
    assert audit_service.verify_chain(session=db).ok


def test_erase_crypto_shreds_the_case(client, accounts, app, db, own_bucket, seaweed):
    vault: Vault = app.state.vault
    case_id = new_case(client, accounts)
    other = new_case(client, accounts)
    row = StoredObject.model_validate(put(db, vault, case_id, MARKER * 10_000).model_dump())
    put(db, vault, other, b"other case")
    bucket = own_bucket.storage.bucket
    ciphertext_copy = s3(seaweed).get_object(Bucket=bucket, Key=row.object_key)["Body"].read()

    assert storage_commands.erase_case(own_bucket, str(case_id)) == 0
    db.expire_all()
    assert db.get(Case, case_id) is None and db.get(CaseKey, case_id) is None
    assert db.exec(select(StoredObject).where(StoredObject.case_id == case_id)).all() == []
    assert (
        s3(seaweed).list_objects_v2(Bucket=bucket, Prefix=f"cases/{case_id}/").get("KeyCount", 0)
        == 0
    )
    assert db.get(Case, other) is not None

    # Restore the copied ciphertext: nothing left can decrypt it.
    s3(seaweed).put_object(Bucket=bucket, Key=row.object_key, Body=ciphertext_copy)
    with pytest.raises(LookupError):
        read(db, vault, row)
    for key in db.exec(select(CaseKey)).all():  # every key that still exists, and a new one
        with pytest.raises(IntegrityError):
            vault.get(case_id=str(case_id), wrapped_key=key.wrapped_key, object_key=row.object_key)
    with pytest.raises(IntegrityError):
        vault.get(
            case_id=str(case_id),
            wrapped_key=vault.new_case_key(str(case_id)),
            object_key=row.object_key,
        )

    events = db.exec(select(AuditEvent).where(AuditEvent.case_id == case_id)).all()
    assert [e.action for e in events][-2:] == ["case.key_destroyed", "case.erase"]
    db.commit()
    assert sealer.seal(engine=app.state.engine).sealed > 0
    assert audit_service.verify_chain(session=db).ok


def test_erasure_knows_every_table_that_references_cases():
    dependents = {model.__tablename__ for model in erasure.CASE_DEPENDENTS} | {"case_keys"}
    referencing = {
        table.name
        for table in SQLModel.metadata.tables.values()
        for fk in table.foreign_keys
        if fk.column.table.name == "cases"
    }
    assert referencing <= dependents, f"add to CASE_DEPENDENTS: {referencing - dependents}"


def test_scrub_reports_missing_corrupt_and_orphaned(
    client, accounts, app, db, own_bucket, seaweed, capsys
):
    vault: Vault = app.state.vault
    case_id = new_case(client, accounts)
    rows = [put(db, vault, case_id, MARKER * 2000 + bytes([i])) for i in range(3)]
    assert storage_commands.scrub(own_bucket) == 0
    # Three objects and the case's text key share.
    assert "4 verified, 0 missing, 0 corrupt, 0 orphaned" in capsys.readouterr().out

    bucket, client_s3 = own_bucket.storage.bucket, s3(seaweed)
    client_s3.delete_object(Bucket=bucket, Key=rows[0].object_key)
    damaged = bytearray(client_s3.get_object(Bucket=bucket, Key=rows[1].object_key)["Body"].read())
    damaged[-40] ^= 0x01
    client_s3.put_object(Bucket=bucket, Key=rows[1].object_key, Body=bytes(damaged))
    stray = f"cases/{case_id}/{uuid.uuid4()}"
    client_s3.put_object(Bucket=bucket, Key=stray, Body=b"nobody knows me")

    assert storage_commands.scrub(own_bucket) == 1
    out = capsys.readouterr().out
    assert "2 verified, 1 missing, 1 corrupt, 1 orphaned" in out
    assert f"missing   {rows[0].object_key}" in out
    assert f"corrupt   {rows[1].object_key}" in out
    assert f"orphaned  {stray}" in out


def test_bucket_holds_no_plaintext(client, accounts, app, db, own_bucket, seaweed):
    vault: Vault = app.state.vault
    put(db, vault, new_case(client, accounts), MARKER * 5000)
    client_s3, bucket = s3(seaweed), own_bucket.storage.bucket
    for item in client_s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = client_s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        assert b"DICM" not in body and b"IVANOVA" not in body
