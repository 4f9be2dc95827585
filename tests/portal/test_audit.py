"""The hash-chained audit trail: what it records, what it refuses, what verification catches."""

from __future__ import annotations

import json
import multiprocessing
import uuid

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from portal.accounts.models import Role
from portal.audit import sealer
from portal.audit import service as audit_service
from portal.audit.models import AuditEvent
from portal.audit.service import AuditContext
from portal.db import create_db_engine
from tests.fixtures.app import Accounts, open_case

CTX = AuditContext(actor_role="system", client_ip="127.0.0.1", request_id="test-request")


def append(session: Session, n: int) -> None:
    """Append ``n`` events and seal them, as housekeeping would."""
    for i in range(n):
        audit_service.record(session=session, ctx=CTX, action="test.event", details={"i": i})
    session.commit()
    assert sealer.seal(engine=session.get_bind()).sealed == n  # type: ignore[arg-type]


def tamper(session: Session, statement: str) -> None:
    """Edit the table by hand, as an intruder with database access would (triggers dropped)."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
    else:
        connection.execute(sa.text("DROP TRIGGER IF EXISTS audit_events_no_update"))
        connection.execute(sa.text("DROP TRIGGER IF EXISTS audit_events_no_delete"))
    connection.execute(sa.text(statement))
    session.commit()


def test_api_actions_land_in_the_chain_with_actor_and_address(
    client: TestClient, accounts: Accounts, db: Session
):
    patient = accounts.patient()
    case = open_case(client, patient)
    client.get(f"/api/cases/{case['id']}", headers=patient.headers)
    events = db.exec(select(AuditEvent).order_by(col(AuditEvent.id))).all()
    actions = [e.action for e in events]
    assert actions == ["account.register", "auth.login", "case.create", "case.read"]
    read = events[-1]
    assert read.actor_id == patient.user_id and read.actor_role == "patient"
    assert read.case_id == uuid.UUID(case["id"]) and read.outcome == "success"
    assert read.client_ip == "testclient" and read.request_id
    assert audit_service.verify_chain(session=db).ok


def test_audit_rows_carry_no_patient_data(client: TestClient, accounts: Accounts, db: Session):
    patient = accounts.patient(name="Olga Smirnova")
    open_case(
        client,
        patient,
        subject="Hemangioma of Olga",
        clinical_question="Olga's question about vertebra Th-XI?",
    )
    dump = json.dumps([e.model_dump(mode="json") for e in db.exec(select(AuditEvent)).all()])
    for secret in (
        "Olga",
        patient.email,
        patient.password,
        patient.token or "",
        "Hemangioma",
        "Th-XI",  # not "T11": audit timestamps hold "T11:" during the 11:00 UTC hour
    ):
        assert secret not in dump


def test_api_lists_events_per_case_for_coordinators(client: TestClient, accounts: Accounts):
    patient = accounts.patient()
    first, second = open_case(client, patient), open_case(client, patient)
    coordinator = accounts.staff(Role.coordinator)
    client.get(f"/api/cases/{second['id']}", headers=coordinator.headers)
    events = client.get(f"/api/audit?case_id={first['id']}", headers=coordinator.headers).json()[
        "items"
    ]
    assert [e["action"] for e in events] == ["case.create"]
    assert {e["case_id"] for e in events} == {first["id"]}
    first_page = client.get("/api/audit?limit=3", headers=coordinator.headers).json()
    everything = first_page["items"]
    assert len(everything) == 3 and everything[0]["id"] > everything[-1]["id"]
    older = client.get(
        f"/api/audit?limit=3&cursor={first_page['next']}", headers=coordinator.headers
    ).json()["items"]
    assert older and older[0]["id"] < everything[-1]["id"]


def test_database_refuses_updates_and_deletes(db: Session):
    append(db, 2)
    for statement in (
        "UPDATE audit_events SET action = 'x' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 1",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            db.connection().execute(sa.text(statement))
        db.rollback()
    assert audit_service.verify_chain(session=db).ok


def test_verify_detects_an_altered_row(db: Session):
    append(db, 5)
    tamper(db, "UPDATE audit_events SET outcome = 'failure' WHERE seq = 3")
    report = audit_service.verify_chain(session=db)
    assert not report.ok and report.first_bad_seq == 3 and "altered" in (report.problem or "")


def test_verify_detects_a_deleted_row(db: Session):
    append(db, 5)
    tamper(db, "DELETE FROM audit_events WHERE seq = 2")
    report = audit_service.verify_chain(session=db)
    assert not report.ok and report.first_bad_seq == 2 and "missing" in (report.problem or "")


def test_verify_detects_a_deleted_last_row(db: Session):
    append(db, 5)
    tamper(db, "DELETE FROM audit_events WHERE seq = 5")
    report = audit_service.verify_chain(session=db)
    assert (
        not report.ok
        and report.first_bad_seq == 5
        and "deleted from the end" in (report.problem or "")
    )


def test_verify_detects_an_inserted_row(db: Session):
    append(db, 4)
    # Shift rows 3.. up by one and slip a forged row 3 in, copying row 3's links.
    tamper(db, "UPDATE audit_events SET seq = seq + 100 WHERE seq >= 3")
    tamper(db, "UPDATE audit_events SET seq = seq - 99 WHERE seq >= 100")
    forged = db.exec(select(AuditEvent).where(AuditEvent.seq == 4)).one()
    tamper(
        db,
        "INSERT INTO audit_events (seq, at, action, outcome, details, prev_hash, hash) "  # noqa: S608
        "VALUES (3, '2026-01-01 00:00:00', 'case.read', 'success', '{}', "
        f"'{forged.prev_hash}', '{forged.hash}')",
    )
    report = audit_service.verify_chain(session=db)
    assert not report.ok and report.first_bad_seq == 3


def _writer(url: str, n: int) -> None:
    engine = create_db_engine(url)
    for i in range(n):
        with Session(engine) as session:
            audit_service.record(
                session=session, ctx=CTX, action="test.concurrent", details={"i": i}
            )
            session.commit()
    engine.dispose()


def test_two_processes_writing_at_once_extend_one_chain(database_url: str, db: Session):
    sealer.seal(engine=db.get_bind())  # type: ignore[arg-type]
    before = audit_service.verify_chain(session=db).checked
    db.close()
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_writer, args=(database_url, 40)) for _ in range(2)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=120)
        assert process.exitcode == 0
    sealer.seal(engine=db.get_bind())  # type: ignore[arg-type]
    report = audit_service.verify_chain(session=db)
    assert report.ok, report.problem
    assert report.checked == before + 80
