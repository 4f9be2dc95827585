"""PostgreSQL's plans for the lists: every page query can walk an index on the big tables.

The queries are the ones the app really sends (caught with ``before_cursor_execute`` while
the routes answer), explained with their own parameters after ``ANALYZE``.

They are explained with ``enable_seqscan = off``. At the few thousand rows a fast test can
afford, reading a whole table is honestly the cheapest plan for some of them (a case's 300
instances out of 2,300), so the planner's choice at this size says nothing about 1,000,000
instances. With sequential scans priced out, a ``Seq Scan`` still in the plan means that no
index can serve the query at all: that is what this test guards (the planner's real choices
at scale are in ``bench/lists.py`` and docs/scale.md).
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from portal.access import Principal
from portal.accounts.models import Role
from portal.db import utcnow
from reviewers import dashboard, specialists
from tests.fixtures.app import Accounts, open_case
from tests.fixtures.bulk import insert_audit_events, insert_cases, insert_images
from tests.portal.test_pages import browser_sign_in

BIG_TABLES = ("cases", "case_files", "dicom_instances", "audit_events")
WHOLE_TABLE_COUNTS = re.compile(r"GROUP BY cases\.status|count\(\*\)", re.IGNORECASE)
"""The dashboard's counts by status cover every case: reading them all is the point."""
SORTED_ROWS = 200


def _selects_on_big_tables(sent: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    wanted = []
    for statement, parameters in sent:
        text = statement.lstrip()
        if not text.upper().startswith("SELECT"):
            continue
        if not any(re.search(rf"\bFROM {table}\b|\bJOIN {table}\b", text) for table in BIG_TABLES):
            continue
        if WHOLE_TABLE_COUNTS.search(text) and "LIMIT" not in text:
            continue
        wanted.append((statement, parameters))
    return wanted


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_every_list_query_uses_an_index(app: FastAPI, client: TestClient, accounts: Accounts):
    """~2,000 cases, 2,300 files with their instances and 4,000 audit rows."""
    patient, other = accounts.patient(), accounts.patient()
    coordinator = accounts.staff(Role.coordinator)
    specialist = accounts.specialist("Dr Plan")
    engine = app.state.engine
    case = uuid.UUID(open_case(client, patient)["id"])  # with its keys: its files are named
    with engine.begin() as connection:
        insert_cases(connection, patient_id=other.user_id, count=1000)
        mine = insert_cases(connection, patient_id=patient.user_id, count=40)
        insert_cases(
            connection,
            patient_id=other.user_id,
            count=1000,
            status="in_review",
            specialist_id=specialist.user_id,
        )
        insert_cases(connection, patient_id=other.user_id, count=30, status="triage")
        insert_images(connection, case_id=case, uploader_id=patient.user_id, instances=300)
        for elsewhere in mine[1:3]:
            insert_images(
                connection, case_id=elsewhere, uploader_id=patient.user_id, instances=1000
            )
        insert_audit_events(connection, case_ids=[case, *mine], per_case=100, first_seq=10**6)
    with engine.connect() as connection:
        connection.execute(sa.text("ANALYZE"))
        connection.commit()

    sent: list[tuple[str, Any]] = []

    def catch(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        sent.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", catch)
    try:
        for who, url in [
            (patient, "/api/cases"),
            (specialist, "/api/cases"),
            (coordinator, "/api/cases"),
            (coordinator, "/api/cases?status=triage"),
            (patient, f"/api/cases/{case}/files"),
            (coordinator, f"/api/audit?case_id={case}"),
            (coordinator, "/api/specialists"),
            (patient, f"/api/cases/{case}/studies"),
        ]:
            first = client.get(url, headers=who.headers)
            assert first.status_code == 200, (url, first.text)
            following = first.json().get("next") if url != f"/api/cases/{case}/studies" else None
            if following:
                path, _, query = url.partition("?")
                params = {**dict(parse_qsl(query)), "cursor": following}
                more = client.get(path, params=params, headers=who.headers)
                assert more.status_code == 200, (url, more.text)
        browser_sign_in(client, coordinator)
        assert client.get("/cases", params={"specialist": str(specialist.user_id)}).is_success
        assert client.get("/cases", params={"q": "back"}).is_success
    finally:
        sa.event.remove(engine, "before_cursor_execute", catch)

    explained = _selects_on_big_tables(sent)
    assert len(explained) >= 12, [statement for statement, _ in explained]
    scans = []
    with engine.connect() as connection:
        connection.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in explained:
            plan = "\n".join(
                row[0]
                for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters).all()
            )
            whole_table = any(re.search(rf"Seq Scan on {table}\b", plan) for table in BIG_TABLES)
            # A page of a long list is read in index order: sorting many rows means it read
            # them all first (a few dozen, one patient's cases, are cheaper sorted than walked).
            sorts = [int(rows) for rows in re.findall(r"Sort  \(cost=\S+ rows=(\d+)", plan)]
            sorted_page = " LIMIT " in statement and any(rows > SORTED_ROWS for rows in sorts)
            if whole_table or sorted_page:
                scans.append(f"{statement}\n{plan}")
        connection.rollback()
    assert not scans, "\n\n".join(scans)


def test_the_test_finds_page_queries() -> None:
    """The filter keeps page queries and leaves out writes and whole-table counts."""
    sent = [
        ("SELECT cases.id FROM cases WHERE cases.patient_id = %(p)s LIMIT %(l)s", {}),
        ("INSERT INTO audit_events (seq) VALUES (%(s)s)", {}),
        ("SELECT cases.status, count(*) AS count_1 FROM cases GROUP BY cases.status", {}),
        ("SELECT users.id FROM users", {}),
        ("SELECT x FROM dicom_instances WHERE series_id = %(s)s", {}),
    ]
    kept = [statement for statement, _ in _selects_on_big_tables(sent)]
    assert kept == [sent[0][0], sent[4][0]]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_specialists_load_and_deadline_counts_read_only_the_index(app: FastAPI, accounts: Accounts):
    """Every coordinator page counts each specialist's active cases and the cases per deadline
    state; both are answered from ``ix_cases_status_load`` without reading the table."""
    patient = accounts.patient()
    specialist = accounts.specialist("Dr Load")
    engine = app.state.engine
    now = utcnow()
    with engine.begin() as connection:
        for status in ("draft", "in_review", "assigned", "closed"):
            insert_cases(
                connection,
                patient_id=patient.user_id,
                count=500,
                status=status,
                specialist_id=None if status == "draft" else specialist.user_id,
                due_at=now + timedelta(days=3),
            )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE cases")
    sent: list[tuple[str, Any]] = []

    def catch(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        sent.append((statement, parameters))

    coordinator = Principal(user_id=uuid.uuid4(), role=Role.coordinator)
    sa.event.listen(engine, "before_cursor_execute", catch)
    try:
        with Session(engine) as session:
            assert specialists.active_case_counts(session=session) == {specialist.user_id: 1000}
            dashboard.counts_by_deadline(session=session, principal=coordinator, now=now)
    finally:
        sa.event.remove(engine, "before_cursor_execute", catch)
    assert len(sent) == 2
    with engine.connect() as connection:
        # At 2,000 rows any plan is cheap, and the planner picks among the table's indexes by
        # statistics of this size. The question is whether this index alone can answer: the
        # table's other indexes are dropped inside a transaction that is rolled back, and the
        # plans that read the table are priced out.
        others = (
            "ix_cases_status",
            "ix_cases_status_created",
            "ix_cases_assigned_specialist_id",
            "ix_cases_specialist_created",
        )
        connection.exec_driver_sql("DROP INDEX " + ", ".join(others))
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        for statement, parameters in sent:
            plan = "\n".join(
                row[0]
                for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters).all()
            )
            assert "Index Only Scan using ix_cases_status_load" in plan, f"{statement}\n{plan}"
        connection.rollback()
