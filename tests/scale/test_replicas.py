"""Two ``portal serve`` replicas on one PostgreSQL and a SeaweedFS cluster of separate
processes: a client may reach either replica for any request, as behind a load balancer."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, col, select

from portal.accounts.models import Role
from portal.audit.models import AuditEvent
from portal.cases.models import Case, CaseStatus
from portal.db import utcnow
from portal.intake.models import CaseFile
from portal.jobs.models import Job
from portal.notifications.models import NotificationKind, OutboxMessage, OutboxStatus
from portal.objects import orphans
from portal.settings import Settings
from tests.cluster import SeaweedCluster
from tests.crash.harness import Crashes
from tests.fixtures.app import PASSWORD, Accounts
from tests.fixtures.http_api import consent_to_case, create_case, register_patient
from tests.fixtures.live import ServerProcess
from tests.fixtures.smtp import Received, SmtpServer
from tests.portal import samples
from tests.services import wait_for

OFFSET_STREAM = "application/offset+octet-stream"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]


def _tus_metadata(case_id: str, filename: str) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in (("case_id", case_id), ("filename", filename))
    )


def test_a_patient_moving_between_replicas_sees_one_portal(
    replicas: list[ServerProcess], cluster: SeaweedCluster, settings: Settings, app: FastAPI
):
    a, b = (server.url for server in replicas)
    assert cluster.data_nodes() == 2
    patient = register_patient(a, PASSWORD)
    case_id = create_case(b, patient.headers)
    consent_to_case(a, patient.headers, case_id)

    ct = samples.dicom("CT_small.dcm")
    sent = httpx.post(
        f"{b}/api/cases/{case_id}/files",
        files=[("files", ("ct.dcm", ct))],
        headers=patient.headers,
        timeout=60,
    )
    assert sent.status_code == 200 and len(sent.json()["accepted"]) == 1, sent.text

    # A resumable upload begun on A and finished on B (as after a deploy or a failover).
    mr = samples.dicom("MR_small.dcm")
    tus = {**patient.headers, "Tus-Resumable": "1.0.0"}
    created = httpx.post(
        f"{a}/api/uploads",
        headers={
            **tus,
            "Upload-Length": str(len(mr)),
            "Upload-Metadata": _tus_metadata(case_id, "mr.dcm"),
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    half = len(mr) // 2
    patch = {**tus, "Content-Type": "application/offset+octet-stream"}
    first = httpx.patch(
        f"{a}{location}", content=mr[:half], headers={**patch, "Upload-Offset": "0"}, timeout=60
    )
    assert first.status_code == 204, first.text
    offset = httpx.head(f"{b}{location}", headers=tus, timeout=30).headers["upload-offset"]
    assert int(offset) == half
    rest = httpx.patch(
        f"{b}{location}", content=mr[half:], headers={**patch, "Upload-Offset": offset}, timeout=60
    )
    assert rest.status_code == 204, rest.text
    # The last PATCH hands the upload to a job, which any replica's workers may run.
    assert wait_for(
        lambda: (
            httpx.get(f"{a}{location}", headers=patient.headers, timeout=30).json()["status"]
            == "complete"
        ),
        timeout=60,
    )

    listed = httpx.get(f"{a}/api/cases/{case_id}/files", headers=patient.headers, timeout=30)
    files = {item["filename"]: item for item in _items(listed.json())}
    assert set(files) == {"ct.dcm", "mr.dcm"}, listed.text
    for name, original in (("ct.dcm", ct), ("mr.dcm", mr)):
        for url in (a, b):
            content = httpx.get(
                f"{url}/api/cases/{case_id}/files/{files[name]['id']}/content",
                headers=patient.headers,
                timeout=60,
            )
            assert content.status_code == 200
            assert (
                hashlib.sha256(content.content).hexdigest() == hashlib.sha256(original).hexdigest()
            )

    crashes = Crashes(settings, app, replicas[0].log)
    crashes.assert_storage_consistent()  # scrub clean, audit chain verifies


def _items(body: object) -> list[dict[str, object]]:
    """A list answer, paginated (``{"items": …}``) or not."""
    if isinstance(body, dict):
        items = body["items"]
        assert isinstance(items, list)
        return items
    assert isinstance(body, list)
    return body


@pytest.fixture
def busy_replicas(
    settings: Settings, tmp_path: Path, app: FastAPI, smtpd: SmtpServer
) -> Iterator[list[ServerProcess]]:
    """Two replicas that both run housekeeping every second and deliver mail to ``smtpd``."""
    servers = [ServerProcess(settings, tmp_path / f"busy-{name}.log") for name in "ab"]
    for server in servers:
        server.env.update(
            PORTAL_SWEEP_ENABLED="true",
            PORTAL_SWEEP_INTERVAL_SECONDS="1",
            PORTAL_MAIL_BACKEND="smtp",
            PORTAL_MAIL_SMTP_HOST="127.0.0.1",
            PORTAL_MAIL_SMTP_PORT=str(smtpd.port),
            PORTAL_MAIL_SECURITY="none",
        )
        server.start()
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_two_replicas_housekeeping_warns_once_mails_once_and_seals_one_chain(
    busy_replicas: list[ServerProcess],
    smtpd: SmtpServer,
    settings: Settings,
    app: FastAPI,
    accounts: Accounts,
):
    a, b = (server.url for server in busy_replicas)
    coordinator = accounts.staff(Role.coordinator)
    specialist = accounts.specialist(body_regions=["spine"], modalities=["CT"], languages=["en"])
    patient = register_patient(a, PASSWORD)
    case_id = create_case(b, patient.headers)
    consent_to_case(a, patient.headers, case_id)
    sent = httpx.post(
        f"{b}/api/cases/{case_id}/files",
        files=[("files", ("ct.dcm", samples.dicom("CT_small.dcm")))],
        headers=patient.headers,
        timeout=60,
    )
    assert sent.status_code == 200, sent.text
    submitted = httpx.post(f"{a}/api/cases/{case_id}/submit", headers=patient.headers, timeout=60)
    assert submitted.status_code == 200, submitted.text

    # The review ran late: the deadline passed an hour ago (as the clock would have it).
    with Session(app.state.engine) as session:
        case = session.get(Case, uuid.UUID(case_id))
        assert case is not None
        case.status = CaseStatus.in_review
        case.assigned_specialist_id = specialist.user_id
        case.due_at = utcnow() - timedelta(hours=1)
        case.deadline_notice = None
        session.add(case)
        session.commit()

    def overdue_mail() -> list[Received]:
        return [m for m in smtpd.received if coordinator.email in m.rcpt_tos]

    assert wait_for(lambda: overdue_mail(), timeout=30), "no overdue warning was mailed"
    time.sleep(5)  # five more passes on each replica: none may warn or mail again
    assert len(overdue_mail()) == 1
    with Session(app.state.engine) as session:
        warned = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.case_id == uuid.UUID(case_id))
            .where(OutboxMessage.kind == NotificationKind.case_overdue)
        ).all()
        assert [m.recipient_id for m in warned] == [coordinator.user_id]
        assert [m.status for m in warned] == [OutboxStatus.sent]
        unsealed = session.exec(
            select(func.count()).select_from(AuditEvent).where(col(AuditEvent.seq).is_(None))
        ).one()
    assert unsealed == 0 or wait_for(lambda: _all_sealed(app), timeout=10)
    Crashes(settings, app, busy_replicas[0].log).assert_storage_consistent()


def _all_sealed(app: FastAPI) -> bool:
    with Session(app.state.engine) as session:
        return (
            session.exec(
                select(func.count()).select_from(AuditEvent).where(col(AuditEvent.seq).is_(None))
            ).one()
            == 0
        )


def test_a_cd_import_job_survives_its_replicas_kill_and_another_finishes_it(
    settings: Settings, app: FastAPI, client: TestClient, tmp_path: Path
):
    """Replica A takes the import job of a CD's ZIP; B joins; A is killed with SIGKILL mid-import;
    when A's lease runs out B claims the job and finishes it: every entry once, scrub clean."""
    a, b = (ServerProcess(settings, tmp_path / f"jobs-{name}.log") for name in "ab")
    for server in (a, b):
        server.env.update(
            PORTAL_SWEEP_ENABLED="false",
            PORTAL_JOBS_LEASE_SECONDS="3",
            PORTAL_JOBS_POLL_SECONDS="0.5",
            PORTAL_JOBS_RETRY_SECONDS="0",
        )
    a.start()
    try:
        patient = register_patient(a.url, PASSWORD)
        case_id = create_case(a.url, patient.headers)
        consent_to_case(a.url, patient.headers, case_id)
        entries = 150
        data = samples.ct_zip(entries)
        tus = {**patient.headers, "Tus-Resumable": "1.0.0"}
        created = httpx.post(
            f"{a.url}/api/uploads",
            headers={
                **tus,
                "Upload-Length": str(len(data)),
                "Upload-Metadata": _tus_metadata(case_id, "cd.zip"),
            },
            timeout=30,
        )
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        sent = httpx.patch(
            f"{a.url}{location}",
            content=data,
            headers={
                **tus,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
            },
            timeout=120,
        )
        assert sent.status_code == 204, sent.text

        def status(url: str) -> dict[str, object]:
            answer = httpx.get(f"{url}{location}", headers=patient.headers, timeout=30)
            assert answer.status_code == 200, answer.text
            body: dict[str, object] = answer.json()
            return body

        b.start()  # B joins while A's job runs: A's lease is renewed, B must leave the job alone
        assert wait_for(lambda: int(str(status(b.url)["entries_done"] or 0)) >= 10, timeout=60)
        assert a.process is not None
        a.process.kill()
        a.process.wait(timeout=30)
        killed_at = int(str(status(b.url)["entries_done"]))
        assert killed_at < entries, "the import finished before the kill: use a larger CD"
        assert wait_for(lambda: status(b.url)["status"] == "complete", timeout=120)
        done = status(b.url)
        result = done["result"]
        assert isinstance(result, dict) and len(result["accepted"]) == entries
    finally:
        for server in (a, b):
            server.stop()
    with Session(app.state.engine) as session:
        files = session.exec(select(CaseFile).where(CaseFile.case_id == uuid.UUID(case_id))).all()
        assert len(files) == entries and len({f.sha256 for f in files}) == entries
        assert session.exec(select(Job)).one().attempts == 2  # A's, then B's
        orphans.remove_orphans(session=session, vault=app.state.vault, grace=timedelta(0))
        session.commit()
    Crashes(settings, app, tmp_path / "jobs-b.log").assert_storage_consistent()
