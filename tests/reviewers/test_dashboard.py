"""The coordinator's dashboard: filters, counts and pages in SQL, a bounded number of queries."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from portal.access import Principal
from portal.accounts.models import Role, User
from portal.audit.service import AuditContext
from portal.cases import service as cases_service
from portal.cases.models import Case, CaseStatus
from portal.db import utcnow
from portal.pagination import PageRequest
from reviewers import dashboard, specialists
from reviewers.dashboard import CaseFilters
from reviewers.deadlines import DeadlineState
from tests.fixtures.app import Accounts
from tests.fixtures.bulk import insert_cases, insert_images
from tests.portal.test_pages import Page, browser_sign_in, check_page

HOUR = timedelta(hours=1)


def _deadline_cases(app: FastAPI, patient_id: uuid.UUID, specialist_id: uuid.UUID) -> None:
    """Cases on each side of every deadline boundary (an hour clear of it), in every status."""
    now = utcnow()
    with app.state.engine.begin() as connection:
        for status in ("draft", "triage", "assigned", "in_review", "info_requested", "closed"):
            for due in (None, now - 2 * HOUR, now + HOUR, now + 23 * HOUR, now + 25 * HOUR):
                for paused in (None, now - HOUR):
                    insert_cases(
                        connection,
                        patient_id=patient_id,
                        count=1,
                        status=status,
                        specialist_id=specialist_id if status != "draft" else None,
                        due_at=due,
                        paused_at=paused,
                    )


def test_deadline_states_in_sql_agree_with_the_rule(
    app: FastAPI, client: TestClient, accounts: Accounts
):
    """Counts by deadline state (GROUP BY) and the deadline filter select exactly the cases
    that ``reviewers.deadlines.deadline_state`` puts in each state."""
    patient = accounts.patient()
    specialist = accounts.specialist("Dr Sql")
    coordinator = Principal(user_id=uuid.uuid4(), role=Role.coordinator)
    _deadline_cases(app, patient.user_id, specialist.user_id)
    now = utcnow()
    with Session(app.state.engine) as session:
        cases = session.exec(select(Case)).all()
        expected = Counter(cases_service.deadline_state(case) for case in cases)
        counts = dashboard.counts_by_deadline(session=session, principal=coordinator, now=now)
        assert counts == {state: n for state, n in expected.items() if state is not None}
        assert set(counts) == {state.value for state in DeadlineState}
        for state in DeadlineState:
            found, _next = dashboard.page_of_cases(
                session=session,
                principal=coordinator,
                filters=CaseFilters(deadline=state),
                page=PageRequest(limit=500),
                now=now,
            )
            want = {case.id for case in cases if cases_service.deadline_state(case) == state}
            assert {case.id for case in found} == want, state
        by_status = dashboard.counts_by_status(session=session, principal=coordinator)
        assert by_status == dict(Counter(case.status.value for case in cases))


def test_filters_and_search_select_in_the_database(
    app: FastAPI, client: TestClient, accounts: Accounts
):
    patient = accounts.patient()
    first, second = accounts.specialist("Dr One"), accounts.specialist("Dr Two")
    coordinator = Principal(user_id=uuid.uuid4(), role=Role.coordinator)
    with app.state.engine.begin() as connection:
        mine = insert_cases(
            connection,
            patient_id=patient.user_id,
            count=3,
            status="in_review",
            specialist_id=first.user_id,
            subject="Hemangioma 50% smaller",
        )
        insert_cases(connection, patient_id=patient.user_id, count=2, specialist_id=second.user_id)
    now, everything = utcnow(), PageRequest(limit=500)
    with Session(app.state.engine) as session:
        reference = session.exec(select(Case.reference).where(Case.id == mine[0])).one()

        def ids(filters: CaseFilters) -> set[uuid.UUID]:
            found, _next = dashboard.page_of_cases(
                session=session, principal=coordinator, filters=filters, page=everything, now=now
            )
            return {case.id for case in found}

        assert ids(CaseFilters(specialist=first.user_id)) == set(mine)
        assert ids(CaseFilters(search="hemangioma")) == set(mine)  # any letter case
        assert ids(CaseFilters(search="50%")) == set(mine)  # % is a character, not a wildcard
        assert ids(CaseFilters(search="5_%")) == set()
        assert ids(CaseFilters(search=reference[-5:].lower())) == {mine[0]}
        assert ids(CaseFilters(search="hemangioma", status=CaseStatus.in_review)) == set(mine)
        assert ids(CaseFilters(search="hemangioma", status=CaseStatus.draft)) == set()
        assert ids(CaseFilters(specialist=second.user_id, search="hemangioma")) == set()


def test_the_dashboard_page_pages_and_keeps_its_filters(
    app: FastAPI, client: TestClient, accounts: Accounts
):
    patient = accounts.patient()
    coordinator = accounts.staff(Role.coordinator)
    with app.state.engine.begin() as connection:
        triage = insert_cases(connection, patient_id=patient.user_id, count=5, status="triage")
        insert_cases(connection, patient_id=patient.user_id, count=2, status="draft")
    browser_sign_in(client, coordinator)
    shown: list[str] = []
    pages = 0
    url: str | None = "/cases?status=triage&limit=2"
    while url is not None:
        answer = client.get(url)
        page = check_page(answer)
        table = answer.text.split('id="case-table"', 1)[1].split("</table>", 1)[0]
        shown += re.findall(r'href="/cases/([0-9a-f-]{36})"', table)
        following = [link for link in page.links if "cursor=" in link]
        assert len(following) <= 1
        url = following[0].replace("&amp;", "&") if following else None
        if url:
            assert "status=triage" in url and "limit=2" in url
        pages += 1
    assert pages == 3
    assert sorted(shown) == sorted(str(case_id) for case_id in triage)  # each once, in order
    counted = Page(client.get("/cases").text)
    assert "/cases?status=triage" in counted.links and "/cases?deadline=overdue" in counted.links


@contextmanager
def statements(app: FastAPI) -> Iterator[list[str]]:
    """The SQL statements the app's engine sends while the block runs (a real count)."""
    sent: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    sa.event.listen(app.state.engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        sa.event.remove(app.state.engine, "before_cursor_execute", count)


def test_the_dashboard_sends_as_many_statements_for_many_cases_as_for_few(
    app: FastAPI, client: TestClient, accounts: Accounts
):
    """People, studies and matching are loaded per page in batches: no query per case."""
    coordinator = accounts.staff(Role.coordinator)
    accounts.specialist("Dr Spine", body_regions=["spine"], modalities=["CT"])
    specialist = accounts.specialist("Dr Busy")

    def add(count: int) -> None:
        patient = accounts.patient()
        with app.state.engine.begin() as connection:
            for status in ("triage", "in_review", "draft"):
                assigned = specialist.user_id if status == "in_review" else None
                for case_id in insert_cases(
                    connection,
                    patient_id=patient.user_id,
                    count=count,
                    status=status,
                    specialist_id=assigned,
                    due_at=utcnow() + 3 * HOUR if assigned else None,
                ):
                    insert_images(
                        connection, case_id=case_id, uploader_id=patient.user_id, instances=2
                    )

    def measure() -> int:
        browser_sign_in(client, coordinator)  # making accounts signs the browser out
        client.get("/cases")  # warm: the first request of a session signs things in
        with statements(app) as sent:
            answer = client.get("/cases", follow_redirects=False)
        assert answer.status_code == 200 and 'id="triage"' in answer.text
        return len(sent)

    add(1)
    few = measure()
    add(8)
    many = measure()
    assert many == few, (few, many)
    assert few < 40


def test_a_triage_case_on_the_dashboard_shows_its_suggestions(
    app: FastAPI, client: TestClient, accounts: Accounts
):
    patient = accounts.patient()
    coordinator = accounts.staff(Role.coordinator)
    accounts.specialist("Dr Fits", body_regions=["spine"], modalities=["CT"], languages=["en"])
    with app.state.engine.begin() as connection:
        (case_id,) = insert_cases(connection, patient_id=patient.user_id, count=1, status="triage")
        insert_images(connection, case_id=case_id, uploader_id=patient.user_id, instances=3)
    browser_sign_in(client, coordinator)
    text = client.get("/cases").text
    assert '<ol class="suggestions"><li>Dr Fits' in text
    assert "No specialist covers this case yet" not in text
    assert "1 study · 3 images" in text


def test_one_read_of_the_team_gives_the_roster_and_the_matching_candidates(
    app: FastAPI, accounts: Accounts, team: Any
):
    """The pages read the specialists once (``specialists.team``); it must give exactly what
    the specialists' list and the matching pool give on their own, inactive and blank profiles
    included."""
    retired = accounts.specialist(specialties=["neurosurgery"], body_regions=["spine"])
    accounts.staff(Role.specialist, "Dr Never Edited")
    coordinator = Principal(user_id=team.coordinator.user_id, role=Role.coordinator)
    now = utcnow()
    with Session(app.state.engine) as session:
        user = session.get(User, retired.user_id)
        assert user is not None
        user.is_active = False
        session.commit()
        both = specialists.team(session=session, principal=coordinator, now=now)
        listed, _ = specialists.list_specialists(
            session=session, principal=coordinator, ctx=AuditContext(), page=PageRequest(limit=500)
        )
        assert both.roster == listed
        alone = specialists.candidates(session=session, now=now)
    assert sorted(both.candidates, key=lambda c: c.specialist_id) == sorted(
        alone, key=lambda c: c.specialist_id
    )
    assert retired.user_id not in {c.specialist_id for c in both.candidates}
    assert len(both.roster) == 5
