"""``portal backup`` / ``portal restore`` on SQLite and PostgreSQL with real SeaweedFS: a case
with a study, a record and a submission comes back whole, byte for byte, in a new database and
a new bucket; a wrong keyring, a used target and a tampered backup are refused."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import Session

from portal import cli, migrate
from portal.app import create_app
from portal.backup.errors import BackupDamaged, BackupError, RestoreRefused
from portal.backup.manifest import MANIFEST
from portal.backup.service import restore_backup
from portal.backup.snapshot import tables_in
from portal.cases.consent import CURRENT_VERSION
from portal.db import create_db_engine
from portal.settings import Settings
from storage.embedded import EmbeddedS3
from storage.keyring import LocalKeyring
from tests.fixtures.app import Account, Accounts, file_objects, open_case, text_share_key
from tests.portal import samples
from tests.services import PostgresServer, s3

pytestmark = [pytest.mark.seaweedfs]


def as_environment(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """Point ``portal.cli.main`` (which reads the environment) at ``settings``."""
    storage = settings.storage
    values = {
        "PORTAL_ENVIRONMENT": settings.environment,
        "PORTAL_DATA_DIR": str(settings.data_dir),
        "PORTAL_DATABASE_URL": settings.database_url,
        "PORTAL_SECRET_KEY": settings.secret_key.get_secret_value(),
        "PORTAL_STORAGE_ENDPOINT_URL": str(storage.endpoint_url),
        "PORTAL_STORAGE_ACCESS_KEY_ID": storage.access_key_id,
        "PORTAL_STORAGE_SECRET_ACCESS_KEY": storage.secret_access_key.get_secret_value(),
        "PORTAL_STORAGE_BUCKET": storage.bucket,
        "PORTAL_STORAGE_KEYRING_PATH": str(storage.keyring_path),
        "PORTAL_STORAGE_EMBEDDED": "false",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def target(
    request: pytest.FixtureRequest, tmp_path: Path, settings: Settings, seaweed: EmbeddedS3
) -> Iterator[Settings]:
    """Settings of a fresh place to restore into: a new database, bucket and keyring path."""
    place = tmp_path / "restored"
    place.mkdir()
    name = f"r_{uuid.uuid4().hex[:12]}"
    admin = None
    if settings.database_url.startswith("sqlite"):
        url = f"sqlite:///{place / 'portal.db'}"
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres")
        admin = sa.create_engine(postgres.admin_url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = postgres.url(name)
    storage = settings.storage.model_copy(
        update={
            "bucket": f"restore-{uuid.uuid4().hex[:10]}",
            "keyring_path": place / "keyring.json",
        }
    )
    yield settings.model_copy(update={"database_url": url, "data_dir": place, "storage": storage})
    if admin is not None:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def patient_case(client: TestClient, accounts: Accounts) -> tuple[Account, str, dict[str, str]]:
    """A submitted case with a CT image and a PDF record; the sha256 of each file by id."""
    patient = accounts.patient(name="Olga Ivanova")
    case_id = open_case(client, patient)["id"]
    originals = {"ct.dcm": samples.dicom("CT_small.dcm"), "report.pdf": samples.pdf(2)}
    uploaded = client.post(
        f"/api/cases/{case_id}/files",
        files=[
            ("files", (name, data, "application/octet-stream")) for name, data in originals.items()
        ],
        headers=patient.headers,
    )
    assert uploaded.status_code == 200 and not uploaded.json()["rejected"], uploaded.text
    consent = client.post(
        f"/api/cases/{case_id}/consent",
        json={"accepted": True, "version": CURRENT_VERSION},
        headers=patient.headers,
    )
    assert consent.status_code == 201, consent.text
    submitted = client.post(f"/api/cases/{case_id}/submit", headers=patient.headers)
    assert submitted.status_code == 200 and submitted.json()["status"] == "triage"
    digests = {
        item["id"]: hashlib.sha256(originals[item["filename"]]).hexdigest()
        for item in uploaded.json()["accepted"]
    }
    return patient, case_id, digests


def back_up(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, directory: Path, *args: str
) -> int:
    as_environment(monkeypatch, settings)
    return cli.main(["backup", str(directory), *args])


def is_empty(target: Settings, seaweed: EmbeddedS3) -> bool:
    """No table in the target database, no object in its bucket, no keyring written."""
    client = s3(seaweed)
    buckets = {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}
    bucket = target.storage.bucket
    if bucket in buckets and client.list_objects_v2(Bucket=bucket).get("Contents"):
        return False
    return not target.storage.keyring_path.exists() and database_is_empty(target)


def database_is_empty(target: Settings) -> bool:
    if target.database_url.startswith("sqlite"):
        return not (target.data_dir / "portal.db").exists()
    engine = create_db_engine(target.database_url)
    try:
        with engine.connect() as connection:
            return not tables_in(connection)
    finally:
        engine.dispose()


def test_restore_brings_back_every_byte_in_a_new_database_and_bucket(
    client: TestClient,
    accounts: Accounts,
    db: Session,
    settings: Settings,
    target: Settings,
    seaweed: EmbeddedS3,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    patient, case_id, digests = patient_case(client, accounts)
    share = text_share_key(db, case_id)  # the case's text key share, an object of its own
    assert len(digests) == 2 and len(file_objects(db)) == 2
    db.rollback()  # end the session's read, as a request would, before the backup locks
    directory = tmp_path / "backup"
    assert back_up(monkeypatch, settings, directory) == 0  # while the portal runs
    manifest = json.loads((directory / MANIFEST).read_text())
    assert manifest["objects"]["count"] == 3 and manifest["objects"]["included"] is True
    rows = manifest["database"]["table_rows"]
    assert rows["stored_objects"] == 3 and rows["case_keys"] == 1 and rows["cases"] == 1
    assert rows["users"] == 1 and rows["audit_events"] > 3
    assert manifest["keys"] == {
        "provider": "local",
        "file": "keyring.json",
        "kek_ids": ["1"],
        "kms_key_id": None,
        "case_keys": 1,
    }
    assert (directory / "keyring.json").stat().st_mode & 0o777 == 0o600
    assert "Olga" not in (directory / MANIFEST).read_text()
    capsys.readouterr()

    as_environment(monkeypatch, target)
    assert cli.main(["restore", str(directory)]) == 0, capsys.readouterr().err
    restored = capsys.readouterr().out
    assert f"{manifest['objects']['count']} restored" in restored
    assert cli.main(["storage", "scrub"]) == 0
    scrub = capsys.readouterr().out
    assert f"{manifest['objects']['count']} verified, 0 missing, 0 corrupt, 0 orphaned" in scrub
    assert cli.main(["audit", "verify"]) == 0
    assert "audit trail intact" in capsys.readouterr().out
    source = s3(seaweed).get_object(Bucket=settings.storage.bucket, Key=share)["Body"].read()
    copied = s3(seaweed).get_object(Bucket=target.storage.bucket, Key=share)["Body"].read()
    assert len(source) == 129 and copied == source

    with TestClient(create_app(target), base_url="http://testserver") as restored_client:
        login = restored_client.post(
            "/api/auth/login", json={"email": patient.email, "password": patient.password}
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        case = restored_client.get(f"/api/cases/{case_id}", headers=headers).json()
        assert case["status"] == "triage"
        for file_id, sha256 in digests.items():
            content = restored_client.get(
                f"/api/cases/{case_id}/files/{file_id}/content", headers=headers
            )
            assert content.status_code == 200
            assert hashlib.sha256(content.content).hexdigest() == sha256


def test_a_wrong_keyring_is_refused_and_nothing_is_written(
    client: TestClient,
    accounts: Accounts,
    settings: Settings,
    target: Settings,
    seaweed: EmbeddedS3,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    patient_case(client, accounts)
    directory = tmp_path / "backup"
    assert back_up(monkeypatch, settings, directory) == 0
    other = tmp_path / "other-keyring.json"
    LocalKeyring.ensure(other)
    capsys.readouterr()

    as_environment(monkeypatch, target)
    assert cli.main(["restore", str(directory), "--keyring", str(other)]) == 1
    error = capsys.readouterr().err
    assert "do not open 1 of 1 case keys" in error and "different keyring" in error
    assert is_empty(target, seaweed)


def test_a_database_in_use_is_refused(
    client: TestClient,
    accounts: Accounts,
    settings: Settings,
    target: Settings,
    seaweed: EmbeddedS3,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    patient_case(client, accounts)
    directory = tmp_path / "backup"
    assert back_up(monkeypatch, settings, directory) == 0
    engine = create_db_engine(target.database_url)
    migrate.upgrade(engine)  # a portal was already set up here
    with pytest.raises(RestoreRefused, match="target database is not empty"):
        restore_backup(settings=target, engine=engine, directory=directory)
    engine.dispose()
    buckets = {bucket["Name"] for bucket in s3(seaweed).list_buckets()["Buckets"]}
    assert target.storage.bucket not in buckets and not target.storage.keyring_path.exists()


def test_a_used_bucket_and_a_used_backup_directory_are_refused(
    client: TestClient,
    accounts: Accounts,
    settings: Settings,
    target: Settings,
    seaweed: EmbeddedS3,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    patient_case(client, accounts)
    directory = tmp_path / "backup"
    assert back_up(monkeypatch, settings, directory) == 0
    capsys.readouterr()
    assert back_up(monkeypatch, settings, directory) == 1
    assert "not an empty directory" in capsys.readouterr().err

    used = target.model_copy(
        update={"storage": target.storage.model_copy(update={"bucket": settings.storage.bucket})}
    )
    engine = create_db_engine(used.database_url)
    with pytest.raises(RestoreRefused, match="is not empty; restore into a new bucket"):
        restore_backup(settings=used, engine=engine, directory=directory)
    engine.dispose()
    assert database_is_empty(used) and not used.storage.keyring_path.exists()


def flip_last_byte(path: Path) -> bytes:
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    return original


def test_a_tampered_backup_is_detected_before_anything_is_written(
    client: TestClient,
    accounts: Accounts,
    settings: Settings,
    target: Settings,
    seaweed: EmbeddedS3,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    patient_case(client, accounts)
    directory = tmp_path / "backup"
    assert back_up(monkeypatch, settings, directory) == 0
    manifest = json.loads((directory / MANIFEST).read_text())
    engine = create_db_engine(target.database_url)

    def refused(match: str, **options: Any) -> None:
        with pytest.raises(BackupDamaged, match=match):
            restore_backup(settings=target, engine=engine, directory=directory, **options)
        assert is_empty(target, seaweed)

    object_file = next(path for path in (directory / "objects").rglob("*") if path.is_file())
    original = flip_last_byte(object_file)
    refused("was altered or damaged")
    object_file.write_bytes(original)

    dump = directory / manifest["database"]["file"]
    original = flip_last_byte(dump)
    refused(f"{dump.name} was altered")
    dump.write_bytes(original)

    (directory / "notes.txt").write_text("added later")
    refused("does not name, e.g. notes.txt")
    (directory / "notes.txt").unlink()

    refused("not the one whose SHA-256 was given", manifest_sha256="0" * 64)

    outside = dict(manifest, database=dict(manifest["database"], file="../../etc/passwd"))
    (directory / MANIFEST).write_text(json.dumps(outside))
    refused("is not a file name of a backup")

    edited = dict(manifest, schema_revision="9999")  # the manifest names no checksum of itself
    (directory / MANIFEST).write_text(json.dumps(edited))
    with pytest.raises(RestoreRefused, match="revision 9999 is unknown to this portal"):
        restore_backup(settings=target, engine=engine, directory=directory)
    assert is_empty(target, seaweed)
    engine.dispose()


def test_a_backup_the_keys_cannot_open_is_not_written(
    client: TestClient,
    accounts: Accounts,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """A keyring swapped under a running portal: the backup would be useless, so it fails."""
    from portal.backup.service import create_backup
    from storage.vault import build_vault

    patient_case(client, accounts)
    other = tmp_path / "other-keyring.json"
    LocalKeyring.ensure(other)
    wrong = settings.storage.model_copy(update={"keyring_path": other})
    directory = tmp_path / "backup"
    engine = create_db_engine(settings.database_url)
    with pytest.raises(BackupError, match="do not open 1 of 1 case keys"):
        create_backup(
            settings=settings, engine=engine, vault=build_vault(wrong), directory=directory
        )
    engine.dispose()
    assert directory.is_dir() and not any(directory.iterdir())


def test_without_copies_the_manifest_vouches_for_the_bucket_and_the_keyring_stays_apart(
    client: TestClient,
    accounts: Accounts,
    db: Session,
    settings: Settings,
    target: Settings,
    seaweed: EmbeddedS3,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    """Production: the bucket is versioned and replicated, the keyring is escrowed elsewhere."""
    _, case_id, digests = patient_case(client, accounts)
    files = {stored.object_key for stored in file_objects(db)}
    share = text_share_key(db, case_id)
    db.rollback()  # end the session's read, as a request would, before the backup locks
    assert len(files) == len(digests)
    directory = tmp_path / "backup"
    assert back_up(monkeypatch, settings, directory, "--no-objects", "--no-keyring") == 0
    assert {path.name for path in directory.iterdir()} == {
        MANIFEST,
        "database.pgdump" if "postgresql" in settings.database_url else "database.sqlite3",
        "objects.jsonl",
    }
    listed = [json.loads(line) for line in (directory / "objects.jsonl").read_text().splitlines()]
    assert len(listed) == len(digests) + 1 and all(item["etag"] for item in listed)
    assert {item["key"] for item in listed} == files | {share}
    replica = target.model_copy(
        update={"storage": target.storage.model_copy(update={"bucket": settings.storage.bucket})}
    )
    as_environment(monkeypatch, replica)
    capsys.readouterr()
    assert cli.main(["restore", str(directory)]) == 1
    assert "holds no keyring" in capsys.readouterr().err

    damaged = listed[0]["key"]
    original = s3(seaweed).get_object(Bucket=seaweed.bucket, Key=damaged)["Body"].read()
    s3(seaweed).put_object(Bucket=seaweed.bucket, Key=damaged, Body=original[:-1])
    keyring = ["--keyring", str(settings.storage.keyring_path)]
    assert cli.main(["restore", str(directory), *keyring]) == 1
    assert "is not the object in the backup" in capsys.readouterr().err
    assert database_is_empty(replica) and not replica.storage.keyring_path.exists()

    s3(seaweed).put_object(Bucket=seaweed.bucket, Key=damaged, Body=original)
    assert cli.main(["restore", str(directory), *keyring]) == 0, capsys.readouterr().err
    assert f"0 restored, {len(digests) + 1} verified" in capsys.readouterr().out
    assert replica.storage.keyring_path.read_bytes() == settings.storage.keyring_path.read_bytes()


@pytest.fixture
def kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's KMS; S3 requests still go to the real SeaweedFS (moto passes them through)."""
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield boto3.client("kms", region_name="us-east-1")


def test_with_kms_only_key_references_are_kept_and_a_region_without_the_key_is_refused(
    kms: Any,
    settings: Settings,
    target: Settings,
    seaweed: EmbeddedS3,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    key_arn = kms.create_key()["KeyMetadata"]["Arn"]
    with_kms = {"key_provider": "kms", "kms_key_id": key_arn}
    source = settings.model_copy(update={"storage": settings.storage.model_copy(update=with_kms)})
    app = create_app(source)
    with TestClient(app, base_url="http://testserver") as kms_client:
        patient_case(kms_client, Accounts(kms_client, app))
    directory = tmp_path / "backup"
    monkeypatch.setenv("PORTAL_STORAGE_KEY_PROVIDER", "kms")
    monkeypatch.setenv("PORTAL_STORAGE_KMS_KEY_ID", key_arn)
    assert back_up(monkeypatch, source, directory) == 0
    manifest = json.loads((directory / MANIFEST).read_text())
    assert manifest["keys"]["provider"] == "kms" and manifest["keys"]["file"] is None
    assert manifest["keys"]["kek_ids"] == [key_arn]
    assert not (directory / "keyring.json").exists()

    # A recovery region the (single-region) key was never replicated to.
    restored = target.model_copy(update={"storage": target.storage.model_copy(update=with_kms)})
    as_environment(monkeypatch, restored)
    monkeypatch.setenv("PORTAL_STORAGE_REGION", "eu-west-1")
    capsys.readouterr()
    assert cli.main(["restore", str(directory)]) == 1
    assert "do not open 1 of 1 case keys" in capsys.readouterr().err
    assert is_empty(restored, seaweed)

    monkeypatch.setenv("PORTAL_STORAGE_REGION", "us-east-1")
    assert cli.main(["restore", str(directory)]) == 0, capsys.readouterr().err
    assert cli.main(["storage", "scrub"]) == 0


def test_a_case_erased_after_the_backup_is_erased_again_on_restore(
    client: TestClient,
    accounts: Accounts,
    settings: Settings,
    target: Settings,
    seaweed: EmbeddedS3,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    patient, case_id, _ = patient_case(client, accounts)
    kept = open_case(client, patient, subject="Second question")["id"]
    directory = tmp_path / "backup"
    assert back_up(monkeypatch, settings, directory) == 0
    assert cli.main(["cases", "erase", case_id, "--yes"]) == 0  # after the backup was made
    erased = tmp_path / "erased.txt"
    erased.write_text(f"# exported from the audit trail (case.erase)\n{case_id}\n{uuid.uuid4()}\n")

    as_environment(monkeypatch, target)
    capsys.readouterr()
    assert cli.main(["restore", str(directory), "--erase-again", str(erased)]) == 0
    assert "erased again: 1 of 2 listed case(s)" in capsys.readouterr().out
    assert cli.main(["storage", "scrub"]) == 0 and cli.main(["audit", "verify"]) == 0
    engine = create_db_engine(target.database_url)
    with engine.connect() as connection:
        cases = connection.execute(sa.text("SELECT id FROM cases")).scalars().all()
    with Session(engine) as session:
        kept_share = text_share_key(session, kept)
    engine.dispose()
    assert [uuid.UUID(str(found)) for found in cases] == [uuid.UUID(kept)]
    # Only the kept case's text key share is left: the erased case's files and share are gone.
    left = s3(seaweed).list_objects_v2(Bucket=target.storage.bucket).get("Contents", [])
    assert [item["Key"] for item in left] == [kept_share]


def test_a_backup_taken_while_files_arrive_restores_without_a_missing_or_stray_object(
    client: TestClient,
    accounts: Accounts,
    settings: Settings,
    target: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    patient = accounts.patient()
    case_id = open_case(client, patient)["id"]
    stop, first_done = threading.Event(), threading.Event()
    statuses: list[int] = []

    def keep_uploading() -> None:
        while not stop.is_set():
            photo = ("files", ("photo.png", samples.noise_png(40), "application/octet-stream"))
            answer = client.post(
                f"/api/cases/{case_id}/files", files=[photo], headers=patient.headers
            )
            statuses.append(answer.status_code)
            first_done.set()

    uploader = threading.Thread(target=keep_uploading)
    uploader.start()
    try:
        assert first_done.wait(30)
        assert back_up(monkeypatch, settings, tmp_path / "backup") == 0
    finally:
        stop.set()
        uploader.join(30)
    assert set(statuses) == {200}
    manifest = json.loads((tmp_path / "backup" / MANIFEST).read_text())
    assert manifest["objects"]["count"] == manifest["database"]["table_rows"]["stored_objects"]
    # The case's text key share, the photo finished before the backup began, and at most the
    # photos whose upload had started by the time the backup listed the objects.
    photos = manifest["objects"]["count"] - 1
    assert 1 <= photos <= len(statuses)

    as_environment(monkeypatch, target)
    capsys.readouterr()
    assert cli.main(["restore", str(tmp_path / "backup")]) == 0, capsys.readouterr().err
    assert cli.main(["storage", "scrub"]) == 0
    assert ", 0 missing, 0 corrupt, 0 orphaned" in capsys.readouterr().out


def test_a_restore_that_fails_while_writing_takes_back_its_objects_and_keyring(
    client: TestClient,
    accounts: Accounts,
    settings: Settings,
    target: Settings,
    seaweed: EmbeddedS3,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    """The disk under the database fills up after the objects and keyring are in place."""
    from portal.backup import database

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    patient_case(client, accounts)
    directory = tmp_path / "backup"
    assert back_up(monkeypatch, settings, directory) == 0
    monkeypatch.setattr(database, "restore", disk_full)
    as_environment(monkeypatch, target)
    capsys.readouterr()
    assert cli.main(["restore", str(directory)]) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert is_empty(target, seaweed)
