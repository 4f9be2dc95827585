"""The case state machine through the API: every illegal move for every role changes nothing;
offers, declines, timeouts, manual assignment, deadlines and the sweep."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from portal.accounts.models import Role
from portal.app import create_app
from portal.audit import sealer
from portal.audit import service as audit_service
from portal.cases.consent import CURRENT_VERSION
from portal.cases.models import Case, CaseEvent, CaseStatus
from portal.db import create_db_engine, utcnow
from portal.i18n import format_day, speaking
from portal.notifications.models import NotificationKind, OutboxMessage
from portal.objects import texts
from reviewers import sweep, workflow
from reviewers.models import CaseAssignment, CaseQuestion, OfferStatus, Opinion
from storage.embedded import EmbeddedS3
from tests.fixtures.app import Account, Accounts, make_settings, open_case
from tests.fixtures.logs import SensitiveValues
from tests.portal import samples
from tests.portal.test_pages import browser_sign_in
from tests.reviewers.conftest import Team, ready_case, submit

S = CaseStatus
COMPLETE_OPINION = {
    "summary": "A typical vertebral hemangioma.",
    "findings": "14 mm lesion with vertical trabeculae.",
    "impression": "Vertebral hemangioma, not aggressive.",
    "answers": "It is benign; no treatment is needed.",
    "recommendations": {"treatment_options": "Observation.", "urgency": "routine"},
}

# What the issue allows, written out independently of reviewers.workflow: (action, status) ->
# the roles that may. Everything else must be refused and leave the case as it was.
ALLOWED: dict[tuple[str, CaseStatus], set[str]] = {
    ("submit", S.draft): {"owner"},
    ("cancel", S.draft): {"owner", "coordinator", "admin"},
    ("cancel", S.submitted): {"owner", "coordinator", "admin"},
    ("cancel", S.triage): {"owner", "coordinator", "admin"},
    ("accept", S.assigned): {"specialist"},
    ("decline", S.assigned): {"specialist"},
    ("assign", S.submitted): {"coordinator", "admin"},
    ("assign", S.triage): {"coordinator", "admin"},
    ("assign", S.assigned): {"coordinator", "admin"},
    ("assign", S.in_review): {"coordinator", "admin"},
    ("assign", S.info_requested): {"coordinator", "admin"},
    ("ask", S.in_review): {"specialist"},
    ("ask", S.info_requested): {"specialist"},
    ("ask", S.opinion_delivered): {"owner"},
    ("sign", S.in_review): {"specialist"},
    ("close", S.opinion_delivered): {"owner", "coordinator", "admin"},
}
ROLES = ["owner", "other_patient", "specialist", "other_specialist", "coordinator", "admin"]
SEES = {"owner", "specialist", "coordinator", "admin"}
UNASSIGNED = {S.draft, S.submitted, S.triage}


def _request(
    client: TestClient, action: str, case_id: str, who: Account, spare: Account, *, real_otp: bool
) -> tuple[str, str, dict[str, Any] | None]:
    url = f"/api/cases/{case_id}"
    match action:
        case "submit" | "accept" | "close":
            return "POST", f"{url}/{action}", None
        case "cancel":
            return "POST", f"{url}/cancel", {"reason": "No longer needed."}
        case "decline":
            return "POST", f"{url}/decline", {"reason": "Away this week."}
        case "assign":
            return "POST", f"{url}/assign", {"specialist_id": str(spare.user_id)}
        case "ask":
            return "POST", f"{url}/questions", {"text": "Do you have the earlier MRI?"}
        case "sign":
            # A real code only where signing must succeed: codes are single-use per 30 s step.
            otp = who.next_otp() if real_otp and who.totp_secret else "000000"
            return "POST", f"{url}/opinion/sign", {"password": who.password, "otp": otp}
    raise AssertionError(action)


def _force(db: Session, case_id: str, status: CaseStatus, specialist: Account) -> None:
    """Put a case in ``status`` with an open offer and a complete draft, as if it got there."""
    case = db.get(Case, uuid.UUID(case_id))
    assert case is not None
    case.status = status
    case.due_at = utcnow() + timedelta(days=5)
    if status not in UNASSIGNED:
        case.assigned_specialist_id = specialist.user_id
        offer = CaseAssignment(
            case_id=case.id,
            specialist_id=specialist.user_id,
            respond_by=utcnow() + timedelta(hours=24),
            status=OfferStatus.offered if status == S.assigned else OfferStatus.accepted,
        )
        db.add(offer)
        opinion = Opinion(case_id=case.id, author_id=specialist.user_id)
        sealer = texts.for_case(session=db, case_id=case.id)
        sealer.seal(opinion, "content", json.dumps(COMPLETE_OPINION))
        db.add(opinion)
    db.add(case)
    db.commit()


def _snapshot(db: Session, case_id: str) -> tuple[Any, ...]:
    db.expire_all()
    case = db.get(Case, uuid.UUID(case_id))
    assert case is not None
    events = db.exec(
        select(func.count()).select_from(CaseEvent).where(CaseEvent.case_id == case.id)
    ).one()
    offers = db.exec(
        select(CaseAssignment.status, CaseAssignment.specialist_id).where(
            CaseAssignment.case_id == case.id
        )
    ).all()
    questions = db.exec(
        select(func.count()).select_from(CaseQuestion).where(CaseQuestion.case_id == case.id)
    ).one()
    state = (
        case.status,
        case.assigned_specialist_id,
        case.updated_at,
        events,
        sorted(offers),
        questions,
    )
    db.rollback()  # end the read: SQLite writers wait for it
    return state


@pytest.mark.parametrize("status", list(CaseStatus))
def test_every_illegal_move_for_every_role_is_refused_and_changes_nothing(
    client: TestClient, accounts: Accounts, team: Team, db: Session, status: CaseStatus
):
    owner = accounts.patient(language="ru")
    people = {
        "owner": owner,
        "other_patient": accounts.patient(),
        "specialist": team.spine_ru,
        "other_specialist": team.spine_en,
        "coordinator": team.coordinator,
        "admin": accounts.staff(Role.admin),
    }
    case = ready_case(client, owner, series=1, language="ru")
    _force(db, case["id"], status, team.spine_ru)
    before = _snapshot(db, case["id"])
    failures = []
    for action in ("submit", "cancel", "accept", "decline", "assign", "ask", "sign", "close"):
        for role in ROLES:
            if role in ALLOWED.get((action, status), set()):
                continue
            method, url, body = _request(
                client, action, case["id"], people[role], team.cardiology_ru, real_otp=False
            )
            response = client.request(method, url, json=body, headers=people[role].headers)
            sees = role in SEES and not (role == "specialist" and status in UNASSIGNED)
            # Assigning is refused by role before the case is looked up: 403 reveals nothing.
            expected = {403, 409} if sees else ({403, 404} if action == "assign" else {404})
            if response.status_code not in expected:
                failures.append(f"{role} {action} in {status}: {response.status_code}")
            if _snapshot(db, case["id"]) != before:
                failures.append(f"{role} {action} in {status} changed the case")
                break
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    ("action", "status", "role"),
    sorted((action, status, role) for (action, status), roles in ALLOWED.items() for role in roles),
)
def test_every_allowed_move_works(
    client: TestClient,
    accounts: Accounts,
    team: Team,
    db: Session,
    action: str,
    status: CaseStatus,
    role: str,
):
    owner = accounts.patient(language="ru")
    who = {
        "owner": owner,
        "specialist": team.spine_ru,
        "coordinator": team.coordinator,
        "admin": accounts.staff(Role.admin),
    }[role]
    case = ready_case(client, owner, series=1, language="ru")
    _force(db, case["id"], status, team.spine_ru)
    before = _snapshot(db, case["id"])
    method, url, body = _request(client, action, case["id"], who, team.spine_en, real_otp=True)
    response = client.request(method, url, json=body, headers=who.headers)
    assert response.status_code in {200, 201}, response.text
    assert _snapshot(db, case["id"]) != before


def test_declines_walk_down_the_ranking_never_twice_then_triage(
    client: TestClient, accounts: Accounts, team: Team, db: Session
):
    third = accounts.specialist(
        specialties=["orthopaedics"], body_regions=["spine"], modalities=["CT"], languages=["ru"]
    )
    patient = accounts.patient(language="ru")
    case = ready_case(client, patient, language="ru")
    url = f"/api/cases/{case['id']}"
    first = submit(client, patient, case["id"])
    assert first["assigned_specialist"]["id"] == str(team.spine_ru.user_id)

    declined = client.post(
        f"{url}/decline", json={"reason": "On leave."}, headers=team.spine_ru.headers
    )
    assert declined.status_code == 200
    assert client.get(url, headers=team.spine_ru.headers).status_code == 404
    now = client.get(url, headers=team.coordinator.headers).json()
    assert now["status"] == "assigned"
    assert now["assigned_specialist"]["id"] == str(third.user_id)  # orthopaedics, speaks ru

    # Nobody else speaks Russian: the English-speaking spine surgeon gets it, for translation.
    client.post(f"{url}/decline", json={"reason": "Full."}, headers=third.headers)
    now = client.get(url, headers=team.coordinator.headers).json()
    assert now["assigned_specialist"]["id"] == str(team.spine_en.user_id)
    assert now["needs_translation"] is True

    client.post(f"{url}/decline", json={"reason": "Not my field."}, headers=team.spine_en.headers)
    now = client.get(url, headers=team.coordinator.headers).json()
    assert now["status"] == "triage" and now["assigned_specialist"] is None

    offers = client.get(f"{url}/assignments", headers=team.coordinator.headers).json()
    assert [offer["status"] for offer in offers] == ["declined"] * 3
    assert len({offer["specialist_id"] for offer in offers}) == 3
    assert offers[0]["reason"] == "On leave." and offers[0]["automatic"] is True
    triage_mail = db.exec(
        select(OutboxMessage)
        .where(OutboxMessage.kind == NotificationKind.triage_needed)
        .where(OutboxMessage.recipient_id == team.coordinator.user_id)
    ).all()
    db.rollback()
    assert len(triage_mail) == 1

    # The coordinator assigns by hand, even someone who declined before.
    suggestions = client.get(f"{url}/suggestions", headers=team.coordinator.headers).json()
    assert suggestions["automatic_choice"] is None
    assert {item["reasons"][0] for item in suggestions["left_out"]}
    assigned = client.post(
        f"{url}/assign",
        json={"specialist_id": str(team.spine_ru.user_id), "reason": "Back from leave."},
        headers=team.coordinator.headers,
    )
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["assigned_specialist"]["id"] == str(team.spine_ru.user_id)
    assert assigned.json()["timeline"][-1]["note"] == "Back from leave."


def test_coordinator_reassigns_a_case_in_review(client: TestClient, accounts: Accounts, team: Team):
    patient = accounts.patient(language="ru")
    case = ready_case(client, patient, language="ru")
    url = f"/api/cases/{case['id']}"
    submit(client, patient, case["id"])
    client.post(f"{url}/accept", headers=team.spine_ru.headers)
    unknown = client.post(
        f"{url}/assign", json={"specialist_id": str(uuid.uuid4())}, headers=team.coordinator.headers
    )
    assert unknown.status_code == 404
    same = client.post(
        f"{url}/assign",
        json={"specialist_id": str(team.spine_ru.user_id)},
        headers=team.coordinator.headers,
    )
    assert same.status_code == 409
    moved = client.post(
        f"{url}/assign",
        json={"specialist_id": str(team.spine_en.user_id), "reason": "Workload."},
        headers=team.coordinator.headers,
    )
    assert moved.status_code == 200 and moved.json()["status"] == "assigned"
    assert client.get(url, headers=team.spine_ru.headers).status_code == 404
    offers = client.get(f"{url}/assignments", headers=team.coordinator.headers).json()
    assert [offer["status"] for offer in offers] == ["withdrawn", "offered"]
    assert offers[1]["automatic"] is False


def test_unanswered_offer_times_out_to_the_next_candidate(
    client: TestClient, accounts: Accounts, team: Team, app: FastAPI, db: Session
):
    patient = accounts.patient(language="ru")
    case = ready_case(client, patient, language="ru")
    submit(client, patient, case["id"])
    settings = app.state.settings
    early = sweep.sweep(engine=app.state.engine, vault=app.state.vault, settings=settings)
    assert early.timed_out == 0
    later = utcnow() + timedelta(hours=settings.acceptance_window_hours, minutes=1)
    report = sweep.sweep(
        engine=app.state.engine, vault=app.state.vault, settings=settings, now=later
    )
    assert report.timed_out == 1
    again = sweep.sweep(
        engine=app.state.engine, vault=app.state.vault, settings=settings, now=later
    )
    assert again.timed_out == 0
    now = client.get(f"/api/cases/{case['id']}", headers=team.coordinator.headers).json()
    assert now["assigned_specialist"]["id"] == str(team.spine_en.user_id)
    assert "not answered in time" in now["timeline"][-1]["note"]
    offers = client.get(
        f"/api/cases/{case['id']}/assignments", headers=team.coordinator.headers
    ).json()
    assert [offer["status"] for offer in offers] == ["timed_out", "offered"]


def test_deadline_warnings_go_out_once_and_pause_while_waiting(
    client: TestClient, accounts: Accounts, team: Team, app: FastAPI, db: Session
):
    patient = accounts.patient(language="ru")
    case = ready_case(client, patient, language="ru", priority="urgent")
    url = f"/api/cases/{case['id']}"
    submitted = submit(client, patient, case["id"])
    client.post(f"{url}/accept", headers=team.spine_ru.headers)
    due = datetime.fromisoformat(submitted["due_at"])
    assert timedelta(hours=47) < due - utcnow() <= timedelta(hours=48)
    settings, engine = app.state.settings, app.state.engine

    def selected(now: datetime) -> bool:
        chosen = sweep.cases_needing_notice(
            session=db, now=now, due_soon_hours=settings.due_soon_hours
        )
        db.commit()  # end the read: SQLite transactions here hold the write lock
        return uuid.UUID(case["id"]) in chosen

    assert not selected(utcnow())  # 47 hours away: the sweep does not even load it
    soon = due - timedelta(hours=2)
    assert selected(soon)
    assert (
        sweep.sweep(engine=engine, vault=app.state.vault, settings=settings, now=soon).due_soon == 1
    )
    assert (
        sweep.sweep(engine=engine, vault=app.state.vault, settings=settings, now=soon).due_soon == 0
    )
    assert not selected(soon)  # warned already: nothing to do until it is overdue
    late = due + timedelta(hours=1)
    assert selected(late)
    assert (
        sweep.sweep(engine=engine, vault=app.state.vault, settings=settings, now=late).overdue == 1
    )
    assert (
        sweep.sweep(engine=engine, vault=app.state.vault, settings=settings, now=late).overdue == 0
    )
    assert not selected(late)
    kinds = db.exec(
        select(OutboxMessage.kind, OutboxMessage.recipient_id).where(
            OutboxMessage.case_id == uuid.UUID(case["id"])
        )
    ).all()
    db.rollback()
    assert (NotificationKind.due_soon, team.spine_ru.user_id) in kinds
    assert kinds.count((NotificationKind.case_overdue, team.coordinator.user_id)) == 1

    # While the case waits for the patient, it is never overdue.
    client.post(
        f"{url}/questions", json={"text": "Any older scans?"}, headers=team.spine_ru.headers
    )
    paused = client.get(url, headers=patient.headers).json()
    assert paused["deadline_state"] == "paused"
    assert (
        sweep.sweep(
            engine=engine, vault=app.state.vault, settings=settings, now=late + timedelta(days=3)
        ).overdue
        == 0
    )


def test_a_backlog_of_deadline_warnings_is_worked_off_earliest_first(
    client: TestClient, accounts: Accounts, team: Team, app: FastAPI, db: Session
):
    overdue_by = {}
    for hours in (5, 30, 12):
        patient = accounts.patient(language="ru")
        case = ready_case(client, patient, series=1, language="ru")
        submit(client, patient, case["id"])
        client.post(f"/api/cases/{case['id']}/accept", headers=team.spine_ru.headers)
        overdue_by[uuid.UUID(case["id"])] = hours
    now = utcnow()
    for case_id, hours in overdue_by.items():
        row = db.get(Case, case_id)
        assert row is not None
        row.due_at = now - timedelta(hours=hours)
        db.add(row)
    db.commit()
    settings = app.state.settings.model_copy(update={"sweep_batch": 2})

    def warned() -> set[uuid.UUID]:
        rows = db.exec(
            select(Case.id).where(
                col(Case.id).in_(list(overdue_by)), Case.deadline_notice == "overdue"
            )
        ).all()
        db.rollback()
        return set(rows)

    first = sweep.sweep(engine=app.state.engine, vault=app.state.vault, settings=settings, now=now)
    assert first.overdue == 2
    assert {overdue_by[case_id] for case_id in warned()} == {30, 12}  # the oldest deadlines
    second = sweep.sweep(engine=app.state.engine, vault=app.state.vault, settings=settings, now=now)
    assert second.overdue == 1 and warned() == set(overdue_by)
    third = sweep.sweep(engine=app.state.engine, vault=app.state.vault, settings=settings, now=now)
    assert third.overdue == 0


def test_case_in_a_language_nobody_speaks_is_flagged_for_translation(
    client: TestClient, accounts: Accounts, team: Team
):
    patient = accounts.patient(language="de")
    case = ready_case(client, patient, language="de")
    submitted = submit(client, patient, case["id"])
    assert submitted["status"] == "assigned" and submitted["needs_translation"] is True
    # The matching note is for staff: the patient's timeline says what happened, not why.
    assert submitted["timeline"][-1]["note"] is None
    coordinator = accounts.staff(Role.coordinator)
    seen = client.get(f"/api/cases/{case['id']}", headers=coordinator.headers).json()
    assert "translation" in seen["timeline"][-1]["note"]


def test_without_specialists_the_case_waits_in_triage(client: TestClient, accounts: Accounts):
    coordinator = accounts.staff(Role.coordinator)
    patient = accounts.patient()
    case = ready_case(client, patient)
    submitted = submit(client, patient, case["id"])
    assert submitted["status"] == "triage"
    queue = client.get("/api/cases?status=triage", headers=coordinator.headers).json()["items"]
    assert [item["id"] for item in queue] == [case["id"]]


def test_concurrent_sweeps_time_out_each_offer_once(
    client: TestClient, accounts: Accounts, team: Team, app: FastAPI, db: Session
):
    cases = []
    for _ in range(6):
        patient = accounts.patient(language="ru")
        case = ready_case(client, patient, series=1, language="ru")
        submit(client, patient, case["id"])
        cases.append(uuid.UUID(case["id"]))
    settings = app.state.settings
    later = utcnow() + timedelta(hours=settings.acceptance_window_hours, minutes=1)
    engines = [create_db_engine(settings.database_url) for _ in range(3)]
    barrier = threading.Barrier(len(engines))
    reports: list[sweep.SweepReport] = []

    def run(engine: Any) -> None:
        barrier.wait()
        reports.append(
            sweep.sweep(engine=engine, vault=app.state.vault, settings=settings, now=later)
        )

    threads = [threading.Thread(target=run, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for engine in engines:
        engine.dispose()
    assert sum(report.timed_out for report in reports) == len(cases)
    offers = db.exec(
        select(CaseAssignment.case_id, CaseAssignment.status).where(
            col(CaseAssignment.case_id).in_(cases)
        )
    ).all()
    for case_id in cases:
        statuses = sorted(status for owner, status in offers if owner == case_id)
        assert statuses == [OfferStatus.offered, OfferStatus.timed_out], statuses
    db.commit()
    assert sealer.seal(engine=app.state.engine).sealed > 0
    report = audit_service.verify_chain(session=db)
    assert report.ok and report.unsealed == 0
    db.rollback()


def test_specialist_profiles_are_managed_by_coordinators(
    client: TestClient, accounts: Accounts, team: Team
):
    listed = client.get("/api/specialists", headers=team.coordinator.headers).json()["items"]
    by_id = {item["id"]: item for item in listed}
    assert by_id[str(team.spine_ru.user_id)]["languages"] == ["en", "ru"]
    url = f"/api/specialists/{team.spine_en.user_id}"
    changed = client.patch(
        url,
        json={
            "languages": ["EN", "ru"],
            "modalities": ["mr", "CT"],
            "absences": [{"start": "2026-12-20", "end": "2027-01-03"}],
            "max_active_cases": 3,
        },
        headers=team.coordinator.headers,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["languages"] == ["en", "ru"] and body["modalities"] == ["CT", "MR"]
    assert body["max_active_cases"] == 3
    for bad, word in (
        ({"modalities": ["XRAY"]}, "unknown modality"),
        ({"specialties": ["astrology"]}, "specialties"),
        ({"absences": [{"start": "2027-01-03", "end": "2026-12-20"}]}, "end on or after"),
        ({"max_active_cases": -1}, "max_active_cases"),
        ({"languages": ["english"]}, "two-letter"),
    ):
        refused = client.patch(url, json=bad, headers=team.coordinator.headers)
        assert refused.status_code == 422 and word in refused.json()["detail"], refused.text
    patient = accounts.patient()
    assert client.patch(url, json={}, headers=patient.headers).status_code == 403
    assert (
        client.get(
            f"/api/specialists/{patient.user_id}", headers=team.coordinator.headers
        ).status_code
        == 404
    )
    # Unavailable specialists get no new cases.
    client.patch(
        f"/api/specialists/{team.spine_ru.user_id}",
        json={"available": False},
        headers=team.coordinator.headers,
    )
    sick = accounts.patient(language="ru")
    case = ready_case(client, sick, language="ru")
    assert submit(client, sick, case["id"])["assigned_specialist"]["id"] == str(
        team.spine_en.user_id
    )


def test_the_server_runs_the_sweep_itself(
    tmp_path: Path, database_url: str, seaweed: EmbeddedS3, sensitive: SensitiveValues
):
    settings = make_settings(
        tmp_path, database_url, seaweed, sweep_enabled=True, sweep_interval_seconds=0.2
    )
    with TestClient(create_app(settings)) as client:
        app = client.app
        assert isinstance(app, FastAPI)
        accounts = Accounts(client, app)
        coordinator = accounts.staff(Role.coordinator)
        first = accounts.specialist(body_regions=["spine"], modalities=["CT"], languages=["en"])
        second = accounts.specialist(body_regions=["spine"], modalities=["CT"], languages=["en"])
        patient = accounts.patient()
        case = ready_case(client, patient)
        offered = submit(client, patient, case["id"])["assigned_specialist"]["id"]
        with Session(app.state.engine) as db:
            offer = db.exec(select(CaseAssignment)).one()
            offer.respond_by = utcnow() - timedelta(seconds=1)
            db.add(offer)
            db.commit()
        expected = {str(first.user_id), str(second.user_id)} - {offered}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = client.get(f"/api/cases/{case['id']}", headers=coordinator.headers).json()
            if now["assigned_specialist"]["id"] in expected:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the server did not time out the offer by itself")


def test_a_coordinator_may_assign_by_hand_until_the_opinion_is_written():
    """The case page offers suggestions and the specialist picker in exactly these states."""
    assert {s for s in CaseStatus if workflow.assignable(s)} == {
        CaseStatus.submitted,
        CaseStatus.triage,
        CaseStatus.assigned,
        CaseStatus.in_review,
        CaseStatus.info_requested,
    }


def test_the_case_page_prints_its_due_date_once(client: TestClient, accounts: Accounts, team: Team):
    """The status words already say when the opinion is due; the deadline tag beside them
    gave the date a second time ("due 10 Dec due 10 Dec 2026")."""
    patient = accounts.patient(language="ru")
    case = ready_case(client, patient, language="ru")
    submit(client, patient, case["id"])
    accepted = client.post(f"/api/cases/{case['id']}/accept", headers=team.spine_ru.headers)
    assert accepted.status_code == 200, accepted.text
    due = accepted.json()["due_at"]
    browser_sign_in(client, patient)
    page = client.get(f"/cases/{case['id']}").text  # in Russian, the account's language
    head = page.split('<header class="case-head">', 1)[1].split("</header>", 1)[0]
    day = datetime.fromisoformat(due)
    with speaking("ru"):
        shown = format_day(day)
    assert f"заключение к {shown}" in head
    text = re.sub(r"<[^>]+>", " ", head)  # what a reader sees
    assert text.count(shown) == 1, text


def test_the_submit_hint_names_only_what_is_still_missing(client: TestClient, accounts: Accounts):
    patient = accounts.patient()
    case = open_case(client, patient)
    browser_sign_in(client, patient)

    def hint() -> str:
        page = client.get(f"/cases/{case['id']}").text
        return page.split('id="submit-needs">', 1)[1].split("</small>", 1)[0]

    assert hint() == "Still needed: your consent and at least one file."
    consent = client.post(
        f"/api/cases/{case['id']}/consent",
        json={"accepted": True, "version": CURRENT_VERSION},
        headers=patient.headers,
    )
    assert consent.status_code == 201
    assert hint() == "Still needed: at least one file."
    sent = client.post(
        f"/api/cases/{case['id']}/files",
        files=[("files", ("ct.dcm", samples.ct_series(1)[0], "application/dicom"))],
        headers=patient.headers,
    )
    assert sent.status_code == 200 and sent.json()["accepted"]
    assert hint() == "Your consent and files are in: you can submit."
