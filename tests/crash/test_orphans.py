"""Housekeeping removes what a killed process left in storage, and only that.

A process killed between an object's PUT and its row's commit leaves an object without a row;
one killed during a large PUT leaves an unfinished multipart upload. Both are made here the
way the crash leaves them (the vault stores, nothing commits), on real SeaweedFS.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import FastAPI
from sqlmodel import Session

from portal import housekeeping
from portal.objects import orphans
from portal.objects import service as objects_service
from portal.objects.service import scrub_storage
from portal.settings import Settings
from storage.vault import Vault, case_prefix
from tests.fixtures.app import Accounts, file_objects, open_case, text_share_key
from tests.portal.samples import dicom, pdf

pytestmark = pytest.mark.seaweedfs  # each test has a bucket of its own (conftest.py)


@pytest.fixture
def vault(app: FastAPI, client) -> Vault:
    stored: Vault = app.state.vault
    return stored


def upload(client, account, case_id: str, name: str, data: bytes) -> None:
    response = client.post(
        f"/api/cases/{case_id}/files", files=[("files", (name, data))], headers=account.headers
    )
    assert response.status_code == 200 and response.json()["accepted"], response.text


def crash_leftovers(app: FastAPI, vault: Vault, case_id: str) -> tuple[str, str]:
    """An object stored without its row, and a multipart upload started and never finished."""
    import uuid

    with Session(app.state.engine) as session:
        wrapped = objects_service.case_key(session=session, vault=vault, case_id=uuid.UUID(case_id))
        session.commit()
    orphan = vault.put(case_id=case_id, wrapped_key=wrapped, source=b"no row" * 1000).object_key
    unfinished = f"{case_prefix(case_id)}{uuid.uuid4().hex}"
    vault.store.client.create_multipart_upload(Bucket=vault.store.bucket, Key=unfinished)
    return orphan, unfinished


def pending_keys(vault: Vault) -> set[str]:
    return {pending.key for pending in vault.pending_uploads()}


def test_housekeeping_removes_objects_without_rows_and_unfinished_uploads(
    app: FastAPI, client, accounts: Accounts, vault: Vault, settings: Settings
) -> None:
    patient = accounts.patient()
    case = open_case(client, patient)
    upload(client, patient, case["id"], "ct.dcm", dicom("CT_small.dcm"))
    upload(client, patient, case["id"], "report.pdf", pdf())
    orphan, unfinished = crash_leftovers(app, vault, case["id"])
    with Session(app.state.engine) as session:
        before = scrub_storage(session=session, vault=vault)
    assert before.orphaned == [orphan]
    assert unfinished in pending_keys(vault)

    settings.orphan_grace_seconds = 0
    report = housekeeping.run_once(
        engine=app.state.engine, vault=vault, settings=settings, mail=False
    )

    assert (report.orphans.objects_removed, report.orphans.uploads_aborted) == (1, 1)
    assert unfinished not in pending_keys(vault)
    with Session(app.state.engine) as session:
        after = scrub_storage(session=session, vault=vault)
        uploaded = [stored.object_key for stored in file_objects(session)]
        share = text_share_key(session, case["id"])
    # The uploaded files and the case's text key share (it has a row) are untouched.
    assert len(uploaded) == 2
    assert after.clean and sorted(after.verified) == sorted([*uploaded, share])
    files = client.get(f"/api/cases/{case['id']}/files", headers=patient.headers).json()["items"]
    assert sorted(f["filename"] for f in files) == ["ct.dcm", "report.pdf"]


def test_objects_younger_than_the_grace_period_are_left_alone(
    app: FastAPI, client, accounts: Accounts, vault: Vault, settings: Settings
) -> None:
    """An object without a row may be an upload still validating, or a ZIP being imported."""
    patient = accounts.patient()
    case = open_case(client, patient)
    orphan, unfinished = crash_leftovers(app, vault, case["id"])
    with Session(app.state.engine) as session:
        share = text_share_key(session, case["id"])

    with Session(app.state.engine) as session:
        report = orphans.remove_orphans(session=session, vault=vault, grace=timedelta(hours=1))
    assert (report.objects_removed, report.uploads_aborted) == (0, 0)
    assert report.too_young >= 1
    keys = {info.key for info in vault.list_objects(case_prefix(case["id"]))}
    assert keys == {orphan, share} and unfinished in pending_keys(vault)

    settings.orphan_grace_seconds = 0
    report = housekeeping.run_once(
        engine=app.state.engine, vault=vault, settings=settings, mail=False
    ).orphans
    assert (report.objects_removed, report.uploads_aborted) == (1, 1)
    # Only the case's text key share is left: it has a row, so it is no orphan.
    assert {info.key for info in vault.list_objects(case_prefix(case["id"]))} == {share}
    assert unfinished not in pending_keys(vault)
