"""The patient's receipt on submission, and every mail in its recipient's language, received by
a real SMTP server (aiosmtpd on loopback) on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from portal.cases.models import Case
from portal.i18n import format_minute, speaking
from portal.notifications import service as notifications
from portal.notifications.models import NotificationKind, OutboxMessage
from tests.fixtures.app import Accounts
from tests.fixtures.logs import SENSITIVE
from tests.fixtures.smtp import SmtpServer
from tests.reviewers.conftest import Team, ready_case, submit

PATIENT = "Ирина Волкова"
CLINICAL = {
    "subject": "Гемангиома позвонка Th11",
    "clinical_question": "Нужна ли вертебропластика при гемангиоме Th11?",
    "history": "Онемение ног с марта.",
}
SENSITIVE.add(*CLINICAL.values())


def outbox(db: Session, case_id: str) -> list[OutboxMessage]:
    rows = list(
        db.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.case_id) == uuid.UUID(case_id))
            .order_by(col(OutboxMessage.created_at))
        ).all()
    )
    db.rollback()  # end the read: SQLite writers wait for it
    return rows


def mails_to(smtpd: SmtpServer, address: str) -> dict[str, str]:
    """Subject to body (line ends as sent in the body's encoding: read as ``\n``)."""
    return {
        str(r.message["Subject"]): r.body.replace("\r\n", "\n")
        for r in smtpd.received
        if r.rcpt_tos == [address]
    }


def test_a_russian_patient_reads_receipt_and_question_in_russian_the_specialist_english(
    client: TestClient, accounts: Accounts, team: Team, app: FastAPI, db: Session, smtpd: SmtpServer
):
    patient = accounts.patient(name=PATIENT, language="ru")
    case = ready_case(client, patient, language="ru", **CLINICAL)
    url = f"/api/cases/{case['id']}"
    assert submit(client, patient, case["id"])["assigned_specialist"] is not None
    specialist = team.spine_ru  # reads Russian, but the account speaks English
    assert client.post(f"{url}/accept", headers=specialist.headers).status_code == 200
    asked = client.post(
        f"{url}/questions", json={"text": "Есть ли КТ?"}, headers=specialist.headers
    )
    assert asked.status_code in {200, 201}, asked.text

    report = notifications.deliver_pending(engine=app.state.engine, mail=smtpd.mail())
    assert report.failed == report.retrying == 0

    row = db.get(Case, uuid.UUID(case["id"]))
    assert row is not None and row.due_at is not None
    reference, due_at = row.reference, row.due_at
    db.rollback()
    with speaking("ru"):
        due = format_minute(due_at)
    assert re.fullmatch(r"\d{1,2} [а-я]+\.? \d{4}\s?г\., \d{2}:\d{2} UTC", due), due
    link = f"{app.state.settings.base_url}/cases/{case['id']}"

    to_patient = mails_to(smtpd, patient.email)
    assert sorted(to_patient) == sorted(
        [f"Мы получили ваше обращение {reference}", "У вашего специалиста есть вопрос к вам"]
    )
    receipt = to_patient[f"Мы получили ваше обращение {reference}"]
    assert receipt.startswith(f"Здравствуйте, {PATIENT}!\n\n")
    assert f"Спасибо: мы получили ваше обращение {reference}." in receipt
    assert f"Письменное заключение ожидается до {due}" in receipt
    question = to_patient["У вашего специалиста есть вопрос к вам"]
    assert f"ваше обращение {reference}, нужны дополнительные сведения" in question
    for body in (receipt, question):
        assert f"\n\n{link}\n\n" in body
        assert "нет медицинских сведений" in body and "Портал второго мнения" in body
        assert not re.search(r"\b(Hello|Please|case|Second Opinion|UTC\w)\b", body)
        assert [text for text in CLINICAL.values() if text in body] == []
        assert "Есть ли КТ?" not in body

    to_specialist = mails_to(smtpd, specialist.email)
    assigned = to_specialist[f"New case assigned to you: {reference}"]
    assert assigned.startswith(f"Hello {specialist.full_name},\n\n")
    assert "For your privacy this e-mail contains no medical details" in assigned
    assert not re.search(r"[а-яё]", assigned, re.IGNORECASE)  # nor the patient's name


def test_one_receipt_per_case_however_often_submit_is_sent(
    client: TestClient, accounts: Accounts, team: Team, db: Session
):
    patient = accounts.patient()
    case = ready_case(client, patient)
    submit(client, patient, case["id"])
    again = client.post(f"/api/cases/{case['id']}/submit", headers=patient.headers)
    assert again.status_code == 409
    receipts = [m for m in outbox(db, case["id"]) if m.kind == NotificationKind.case_submitted]
    assert [(m.recipient_id, m.to_address) for m in receipts] == [
        (patient.user_id, patient.email.lower())
    ]
    assert receipts[0].subject.startswith("We have received your case SO-")
    assert "You can expect the written opinion by " in receipts[0].body_text


def test_a_refused_submission_sends_no_receipt(
    client: TestClient, accounts: Accounts, team: Team, db: Session
):
    patient = accounts.patient()
    case = client.post(
        "/api/cases",
        json={**CLINICAL, "body_region": "spine"},
        headers=patient.headers,
    ).json()
    refused = client.post(f"/api/cases/{case['id']}/submit", headers=patient.headers)
    assert refused.status_code == 409  # no consent, no files
    assert outbox(db, case["id"]) == []
