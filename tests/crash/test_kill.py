"""kill -9 at seeded random moments of an upload, a tus completion, a signature and an erasure:
after housekeeping, storage scrubs clean, the audit chain verifies, and no case shows half of
anything (docs/robustness.md)."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from portal import storage_commands
from portal.accounts.models import Role
from portal.audit.models import AuditEvent
from portal.case_erasure import CASE_DEPENDENTS
from portal.cases.models import Case, CaseStatus
from portal.objects import texts
from portal.objects.models import CaseKey
from portal.objects.texts import bind_vault
from portal.settings import Settings
from reviewers.models import Opinion, OpinionStatus
from storage.vault import case_prefix
from tests.crash.harness import Crashes, Outcome, assert_files_whole, kill_points, timed
from tests.fixtures.app import Accounts, open_case
from tests.fixtures.live import settings_env
from tests.fixtures.logs import SensitiveValues
from tests.fixtures.uploads import upload_outcome
from tests.portal import samples
from tests.reviewers.conftest import ready_case, submit, upload
from tests.services import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.seaweedfs]
SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def crashes(
    settings: Settings, app: FastAPI, client: TestClient, tmp_path: Path, sensitive: SensitiveValues
) -> Iterator[Crashes]:
    # Nothing else runs in this portal: whatever a kill left behind may be cleaned at once.
    settings.orphan_grace_seconds = 0
    settings.orphan_interval_seconds = 0  # and looked for at every pass, not once an hour
    harness = Crashes(settings, app, tmp_path / "serve.log")
    sensitive.add_log_file(harness.log)
    harness.start()
    yield harness
    harness.stop()


def fastest_of_two(run: Callable[[], Outcome]) -> Outcome:
    """Time a clean run twice (the first request of a fresh server is slower): the faster."""
    runs = [run() for _ in range(2)]
    for outcome in runs:
        assert outcome.finished and outcome.response.status_code < 300, outcome.response
    return min(runs, key=lambda outcome: outcome.seconds)


@SQLITE
def test_kill_during_multipart_upload(crashes: Crashes, client: TestClient, accounts: Accounts):
    patient = accounts.patient()
    series = samples.ct_series(16)
    files = [
        ("files", (f"ct{n:02}.dcm", data, "application/dicom")) for n, data in enumerate(series)
    ]

    def upload_into(case_id: str):
        return lambda: crashes.http(patient.headers).post(
            f"/api/cases/{case_id}/files", files=files
        )

    clean = fastest_of_two(lambda: timed(upload_into(open_case(client, patient)["id"])))
    for delay in kill_points("multipart", clean.seconds):
        case_id = open_case(client, patient)["id"]
        crashes.kill_during("multipart", delay, upload_into(case_id))
        crashes.recover()
        with crashes.http(patient.headers) as http:
            kept = assert_files_whole(http, crashes.app, case_id)
            crashes.record[-1] += f"; {len(kept)} of {len(series)} files were in"
            # The patient sends the same files again: every one is there once, none twice.
            again = http.post(f"/api/cases/{case_id}/files", files=files)
            assert again.status_code == 200 and not again.json()["rejected"], again.text
            duplicates = sum(1 for item in again.json()["accepted"] if item["duplicate"])
            assert duplicates == len(kept), crashes.record
            assert len(assert_files_whole(http, crashes.app, case_id)) == len(series)
    crashes.assert_storage_consistent()
    print("\n".join([f"clean run {clean.seconds:.3f}s", *crashes.record]))


TUS = {"Tus-Resumable": "1.0.0"}
CHUNK = {**TUS, "Content-Type": "application/offset+octet-stream"}


def tus_upload_but_the_last_chunk(client, patient, case_id: str, data: bytes, parts: int) -> str:
    """A tus upload with all but its last chunk sent (in-process): its address."""
    metadata = ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in {"case_id": case_id, "filename": "volume.dcm"}.items()
    )
    created = client.post(
        "/api/uploads",
        headers={
            **patient.headers,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata,
        },
    )
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    size = len(data) // parts
    for offset in range(0, size * (parts - 1), size):
        sent = client.patch(
            location,
            content=data[offset : offset + size],
            headers={**patient.headers, **CHUNK, "Upload-Offset": str(offset)},
        )
        assert sent.status_code == 204, sent.text
    return str(location)


@SQLITE
def test_kill_during_tus_completion(crashes: Crashes, client: TestClient, accounts: Accounts):
    """The final PATCH stores the last chunk and asks for the completion job, which reads every
    chunk back into the ingest; kills land in either. After a restart, the job finishes."""
    patient = accounts.patient()
    data = samples.ct_volume(count=1, size=1100)[0]  # one 2.3 MB instance
    parts = 3
    last = len(data) // parts * (parts - 1)

    def final_patch(location: str):
        def send() -> httpx.Response:
            with crashes.http(patient.headers) as http:
                answer = http.patch(
                    location, content=data[last:], headers={**CHUNK, "Upload-Offset": str(last)}
                )
                upload_outcome(lambda: http.get(location))  # the job's time counts too
            return answer

        return send

    def prepared() -> tuple[str, str]:
        case_id = open_case(client, patient)["id"]
        return case_id, tus_upload_but_the_last_chunk(client, patient, case_id, data, parts)

    clean = fastest_of_two(lambda: timed(final_patch(prepared()[1])))
    for delay in kill_points("tus", clean.seconds):
        case_id, location = prepared()
        crashes.kill_during("tus", delay, final_patch(location))
        crashes.recover()
        with crashes.http(patient.headers) as http:
            # What a tus client does after a dropped connection: ask the offset, send the rest.
            offset = int(http.head(location, headers=TUS).headers["upload-offset"])
            crashes.record[-1] += f"; offset {offset} of {len(data)} after restart"
            if offset < len(data):
                rest = http.patch(
                    location, content=data[offset:], headers={**CHUNK, "Upload-Offset": str(offset)}
                )
                assert rest.status_code == 204, rest.text
            status = upload_outcome(lambda url=location: http.get(url))
            assert status["status"] == "complete", crashes.record
            files = assert_files_whole(http, crashes.app, case_id)
            assert [f["sha256"] for f in files] == [hashlib.sha256(data).hexdigest()]
    crashes.assert_storage_consistent()
    print("\n".join([f"clean run {clean.seconds:.3f}s", *crashes.record]))


OPINION = {
    "summary": "Solitary lesion of the T11 vertebral body, typical of a hemangioma.",
    "findings": "Lesion of 14 mm in the T11 body with coarse vertical trabeculae.",
    "impression": "Typical vertebral hemangioma without aggressive features.",
    "answers": [{"question": "Is this a typical hemangioma?", "answer": "Yes."}],
    "recommendations": {
        "treatment_options": "Observation.",
        "urgency": "routine",
        "further_tests": "MRI in 12 months.",
    },
}


def case_in_review(client: TestClient, accounts: Accounts, patient, coordinator):
    """A case with a complete draft opinion, held by a specialist of its own (a fresh TOTP)."""
    specialist = accounts.specialist(
        specialties=["spine_surgery"], body_regions=["spine"], modalities=["CT"], languages=["en"]
    )
    case_id = ready_case(client, patient, series=1)["id"]
    submitted = submit(client, patient, case_id)
    if (submitted.get("assigned_specialist") or {}).get("id") != str(specialist.user_id):
        moved = client.post(
            f"/api/cases/{case_id}/assign",
            json={"specialist_id": str(specialist.user_id)},
            headers=coordinator.headers,
        )
        assert moved.status_code == 200, moved.text
    accepted = client.post(f"/api/cases/{case_id}/accept", headers=specialist.headers)
    assert accepted.status_code == 200, accepted.text
    draft = client.put(f"/api/cases/{case_id}/opinion", json=OPINION, headers=specialist.headers)
    assert draft.status_code == 200, draft.text
    return case_id, specialist


def signature_state(app: FastAPI, case_id: str) -> str:
    """'signed' or 'draft', after checking every part of a signature agrees with that."""
    with bind_vault(Session(app.state.engine), app.state.vault) as session:
        case = session.get(Case, uuid.UUID(case_id))
        opinion = session.exec(select(Opinion).where(Opinion.case_id == case.id)).one()
        canonical = texts.for_case(session=session, case_id=case.id).open(opinion, "canonical")
        signings = session.exec(
            select(AuditEvent)
            .where(AuditEvent.case_id == case.id)
            .where(AuditEvent.action == "opinion.sign")
        ).all()
    if opinion.status == OpinionStatus.signed:
        assert canonical and opinion.signed_at and opinion.signer_name
        assert opinion.content_sha256 == hashlib.sha256(canonical.encode()).hexdigest()
        assert case.status == CaseStatus.opinion_delivered and len(signings) == 1
        return "signed"
    assert canonical is None and opinion.content_sha256 is None and not opinion.signed_at
    assert case.status == CaseStatus.in_review and not signings
    return "draft"


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_kill_while_signing_an_opinion(crashes: Crashes, client: TestClient, accounts: Accounts):
    patient = accounts.patient()
    coordinator = accounts.staff(Role.coordinator)

    def sign(case_id: str, specialist):
        body = {"password": specialist.password, "otp": specialist.next_otp()}
        return lambda: crashes.http(specialist.headers).post(
            f"/api/cases/{case_id}/opinion/sign", json=body
        )

    clean = fastest_of_two(
        lambda: timed(sign(*case_in_review(client, accounts, patient, coordinator)))
    )
    for delay in kill_points("sign", clean.seconds):
        case_id, specialist = case_in_review(client, accounts, patient, coordinator)
        crashes.kill_during("sign", delay, sign(case_id, specialist))
        crashes.recover()
        state = signature_state(crashes.app, case_id)
        crashes.record[-1] += f"; the opinion is {state}"
        if state == "draft":  # the specialist signs again, and it works
            again = sign(case_id, specialist)()
            assert again.status_code == 200, again.text
            assert signature_state(crashes.app, case_id) == "signed"
        with crashes.http(patient.headers) as http:
            delivered = http.get(f"/api/cases/{case_id}/opinion")
            assert delivered.status_code == 200 and delivered.json()["status"] == "signed"
    crashes.assert_storage_consistent()
    print("\n".join([f"clean run {clean.seconds:.3f}s", *crashes.record]))


def erase_command(settings: Settings, case_id: str) -> list[str]:
    return [sys.executable, "-m", "portal.cli", "cases", "erase", case_id, "--yes"]


def key_destroyed(app: FastAPI, case_id: str) -> bool:
    with Session(app.state.engine) as session:
        return session.get(CaseKey, uuid.UUID(case_id)) is None


def case_gone(app: FastAPI, case_id: str) -> bool:
    with Session(app.state.engine) as session:
        return session.get(Case, uuid.UUID(case_id)) is None


def erase_in_background(crashes: Crashes, case_id: str) -> tuple[subprocess.Popen[bytes], float]:
    """Start ``portal cases erase``; return once its first step (the key) is committed."""
    command = subprocess.Popen(
        erase_command(crashes.settings, case_id),
        env=settings_env(crashes.settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert wait_for(lambda: key_destroyed(crashes.app, case_id), timeout=90, interval=0.002)
    return command, time.monotonic()


def assert_erased(crashes: Crashes, client: TestClient, case_id: str, patient) -> None:
    """Nothing of the case is left: no rows, no objects, and the patient sees no case."""
    with Session(crashes.app.state.engine) as session:
        assert session.get(Case, uuid.UUID(case_id)) is None
        left = {
            model.__name__: session.exec(
                select(model).where(model.case_id == uuid.UUID(case_id))  # type: ignore[attr-defined]
            ).all()
            for model in [CaseKey, *CASE_DEPENDENTS]
        }
    assert not [name for name, rows in left.items() if rows], left
    assert not list(crashes.app.state.vault.list_objects(case_prefix(case_id)))
    assert client.get(f"/api/cases/{case_id}", headers=patient.headers).status_code == 404


@SQLITE
def test_kill_during_case_erasure(crashes: Crashes, client: TestClient, accounts: Accounts):
    """``portal cases erase`` killed at random moments of its work; running it again finishes.

    The command spends seconds starting up and reading, then commits the key's destruction
    (the crypto-shredding) on its own; the kills are spread over what follows, from that
    commit to the commit that removes the case row: deleting the objects and every row.
    """
    crashes.stop()  # the operator's command works on its own
    patient = accounts.patient()
    files = [(f"ct{n}.dcm", data) for n, data in enumerate(samples.ct_series(8))]

    def case_with_files() -> str:
        case_id = open_case(client, patient)["id"]
        upload(client, patient, case_id, *files, ("report.pdf", samples.pdf()))
        return case_id

    case_id = case_with_files()
    command, shredded = erase_in_background(crashes, case_id)
    assert wait_for(lambda: case_gone(crashes.app, case_id), timeout=90, interval=0.002)
    work = time.monotonic() - shredded
    assert command.wait(timeout=90) == 0
    for delay in kill_points("erase", work):
        case_id = case_with_files()
        command, shredded = erase_in_background(crashes, case_id)
        time.sleep(max(0.0, shredded + delay - time.monotonic()))
        command.kill()
        command.wait(timeout=30)
        objects = len(list(crashes.app.state.vault.list_objects(case_prefix(case_id))))
        crashes.record.append(
            f"erase: kill {delay:.3f}s after the key; case row "
            f"{'gone' if case_gone(crashes.app, case_id) else 'still there'}, {objects} object(s)"
        )
        # The operator runs it again (the same function `portal cases erase` calls).
        again = storage_commands.erase_case(crashes.settings, case_id)
        assert again in (0, 1)  # erased now, or "no case": the first run had finished
        crashes.record[-1] += "; run again: " + ("erased" if again == 0 else "nothing left")
        crashes.recover(restart=False)
        assert_erased(crashes, client, case_id, patient)
    print("\n".join([f"key to case row gone {work:.3f}s", *crashes.record]))
