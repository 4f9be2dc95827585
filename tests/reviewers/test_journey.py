"""The whole journey through the JSON API, against SeaweedFS, on SQLite and PostgreSQL:
a Russian-speaking patient's spine CT goes to the right specialist and comes back as a signed
opinion the patient reads and downloads."""

from __future__ import annotations

import io
import uuid
from datetime import datetime

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlmodel import Session, col, select

from portal import admin_commands
from portal.notifications.models import OutboxMessage
from tests.fixtures.app import Accounts
from tests.portal import samples
from tests.reviewers.conftest import Team, ready_case, submit, upload

IMPRESSION = "Типичная гемангиома тела позвонка Th11 без признаков агрессивности."
OPINION = {
    "summary": "Одиночное образование тела позвонка Th11, характерное для гемангиомы.",
    "findings": "Lesion of 14 mm in the T11 body with coarse vertical trabeculae; no soft tissue.",
    "impression": IMPRESSION,
    "answers": [
        {
            "question": "Is this lesion a typical hemangioma, and does it need treatment?",
            "answer": "Yes, typical; no treatment is needed now.",
        }
    ],
    "recommendations": {
        "treatment_options": "Observation.",
        "urgency": "routine",
        "further_tests": "MRI of the thoracic spine in 12 months.",
    },
    "limitations": "Based on CT only.",
}


def test_spine_case_in_russian_from_upload_to_signed_opinion(
    client: TestClient, accounts: Accounts, team: Team, app: FastAPI, db: Session, capsys
):
    patient = accounts.patient(language="ru")
    case = ready_case(client, patient, series=3, language="ru")
    url = f"/api/cases/{case['id']}"

    submitted = submit(client, patient, case["id"])
    assert submitted["status"] == "assigned"
    assert submitted["assigned_specialist"]["id"] == str(team.spine_ru.user_id)
    assert submitted["due_at"] is not None and submitted["needs_translation"] is False
    steps = [(event["from_status"], event["to_status"]) for event in submitted["timeline"]]
    assert steps[-2:] == [("draft", "submitted"), ("submitted", "assigned")]
    # Why this specialist was matched is for the staff: the patient's timeline has no note.
    assert submitted["timeline"][-1]["note"] is None
    seen = client.get(f"/api/cases/{case['id']}", headers=team.spine_ru.headers).json()
    explanation = seen["timeline"][-1]["note"]
    assert "spine surgery" in explanation and "ru" in explanation and "CT" in explanation

    # Neither the cardiologist nor the English-only spine surgeon sees the case.
    for other in (team.cardiology_ru, team.spine_en):
        assert client.get(url, headers=other.headers).status_code == 404
    specialist = team.spine_ru
    worklist = client.get("/api/cases", headers=specialist.headers).json()["items"]
    assert [item["id"] for item in worklist] == [case["id"]]
    accepted = client.post(f"{url}/accept", headers=specialist.headers)
    assert accepted.status_code == 200 and accepted.json()["status"] == "in_review"

    # The patient cannot read a draft opinion.
    assert client.get(f"{url}/opinion", headers=patient.headers).status_code == 404

    asked = client.post(
        f"{url}/questions",
        json={"text": "Пришлите, пожалуйста, заключение МРТ, если оно есть."},
        headers=specialist.headers,
    )
    assert asked.status_code == 201, asked.text
    waiting = client.get(url, headers=patient.headers).json()
    assert waiting["status"] == "info_requested" and waiting["deadline_state"] == "paused"
    due_before = datetime.fromisoformat(waiting["due_at"])
    upload(client, patient, case["id"], ("mri-report.pdf", samples.pdf(pages=1)))
    answered = client.post(
        f"{url}/questions/{asked.json()['id']}/answer",
        json={"text": "Прикладываю заключение МРТ."},
        headers=patient.headers,
    )
    assert answered.status_code == 200, answered.text
    resumed = client.get(url, headers=specialist.headers).json()
    assert resumed["status"] == "in_review"
    assert datetime.fromisoformat(resumed["due_at"]) > due_before  # the clock stood still

    draft = client.put(
        f"{url}/opinion", json={**OPINION, "impression": ""}, headers=specialist.headers
    )
    assert draft.status_code == 200 and draft.json()["revision"] == 1
    # Codes are single-use and time-bound: refused attempts send a dummy code to save them.
    refused = client.post(
        f"{url}/opinion/sign",
        json={"password": specialist.password, "otp": "000000"},
        headers=specialist.headers,
    )
    assert refused.status_code == 422 and "impression" in refused.json()["detail"]
    saved = client.put(
        f"{url}/opinion", json={**OPINION, "revision": 1}, headers=specialist.headers
    )
    assert saved.status_code == 200 and saved.json()["revision"] == 2
    stale = client.put(
        f"{url}/opinion", json={**OPINION, "revision": 1}, headers=specialist.headers
    )
    assert stale.status_code == 409

    wrong = client.post(
        f"{url}/opinion/sign",
        json={"password": "not the password", "otp": "000000"},
        headers=specialist.headers,
    )
    assert wrong.status_code == 403
    signed = client.post(
        f"{url}/opinion/sign",
        json={"password": specialist.password, "otp": specialist.next_otp()},
        headers=specialist.headers,
    )
    assert signed.status_code == 200, signed.text
    digest = signed.json()["content_sha256"]
    assert len(digest) == 64 and signed.json()["status"] == "signed"
    edit = client.put(f"{url}/opinion", json=OPINION, headers=specialist.headers)
    assert edit.status_code == 409

    delivered = client.get(url, headers=patient.headers).json()
    assert delivered["status"] == "opinion_delivered"
    opinion = client.get(f"{url}/opinion", headers=patient.headers)
    assert opinion.status_code == 200 and opinion.json()["content"]["impression"] == IMPRESSION

    follow_up = client.post(
        f"{url}/questions",
        json={"text": "Можно ли мне заниматься спортом?"},
        headers=patient.headers,
    )
    assert follow_up.status_code == 201
    addendum = client.post(
        f"{url}/questions/{follow_up.json()['id']}/answer",
        json={"text": "Да, без ограничений."},
        headers=specialist.headers,
    )
    assert addendum.status_code == 200

    pdf = client.get(f"{url}/opinion.pdf", headers=patient.headers)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert IMPRESSION in " ".join(text.split())
    assert digest in text.replace("\n", "") and "Да, без ограничений." in text
    assert case["reference"] in text

    kinds = {
        (message.kind.value, message.recipient_id)
        for message in db.exec(
            select(OutboxMessage).where(col(OutboxMessage.case_id) == uuid.UUID(case["id"]))
        ).all()
    }
    db.rollback()  # end the read: SQLite writers wait for it
    assert ("case_assigned", specialist.user_id) in kinds
    assert ("info_requested", patient.user_id) in kinds
    assert ("opinion_delivered", patient.user_id) in kinds
    assert ("follow_up_asked", specialist.user_id) in kinds

    closed = client.post(f"{url}/close", headers=patient.headers)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"

    capsys.readouterr()
    assert admin_commands.verify_audit(app.state.settings) == 0
    assert "audit trail intact" in capsys.readouterr().out
