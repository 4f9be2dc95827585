"""E-mail notifications: outbox rows commit with their cause, a real SMTP server receives them.

The SMTP server is aiosmtpd on loopback; the database is SQLite and PostgreSQL (the
``database_url`` fixture), so claiming under concurrency is checked on both.
"""

from __future__ import annotations

import datetime as dt
import email
import email.utils
import ipaddress
import logging
import re
import ssl
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlmodel import Session, col, select

from portal.accounts import mails as account_mails
from portal.accounts.models import Role, User
from portal.cases.models import Case
from portal.db import create_db_engine, utcnow
from portal.i18n import speaking
from portal.notifications import service as notifications
from portal.notifications import templates
from portal.notifications.models import NotificationKind, OutboxMessage, OutboxStatus
from portal.notifications.settings import MailSettings
from portal.observability import JsonFormatter
from portal.settings import Settings
from tests.fixtures.app import Account, Accounts, open_case
from tests.fixtures.logs import SENSITIVE
from tests.fixtures.smtp import (
    SMTP_LOGIN,
    SMTP_PASSWORD,
    Collector,
    SmtpServer,
    mail_settings,
    running,
)
from tests.services import free_port_block

K = NotificationKind
PATIENT_NAME = "Irina Volkova"
CLINICAL = {
    "subject": "Hemangioma at vertebra T11 of Irina",
    "clinical_question": "Does Irina's lesion at T11 need vertebroplasty or radiotherapy?",
    "history": "Numbness in both legs since March, worse at night.",
}
SENSITIVE.add(*CLINICAL.values())


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: the relay's private CA, in one."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portal test relay")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert_path, key_path = folder / "relay.pem", folder / "relay.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


# --- the database side ------------------------------------------------------------------------


@dataclass
class Scene:
    """A patient's case (with real clinical text) and a specialist, loaded for notify()."""

    patient: Account
    specialist: Account
    case: Case
    patient_user: User
    specialist_user: User


@pytest.fixture
def scene(client: TestClient, accounts: Accounts, db: Session) -> Scene:
    patient = accounts.patient(name=PATIENT_NAME)
    case_id = uuid.UUID(open_case(client, patient, **CLINICAL)["id"])
    specialist = accounts.staff(Role.specialist)
    case = db.get(Case, case_id)
    patient_user, specialist_user = (
        db.get(User, patient.user_id),
        db.get(User, specialist.user_id),
    )
    assert case and patient_user and specialist_user
    db.commit()  # on SQLite every open transaction holds the write lock
    return Scene(patient, specialist, case, patient_user, specialist_user)


def queue(
    db: Session, settings: Settings, scene: Scene, kind: NotificationKind = K.case_assigned
) -> OutboxMessage:
    message = notifications.notify(
        session=db,
        kind=kind,
        recipient=scene.specialist_user,
        case=scene.case,
        base_url=settings.base_url,
    )
    db.commit()
    return message


def outbox_rows(db: Session) -> list[OutboxMessage]:
    db.expire_all()
    rows = list(db.exec(select(OutboxMessage).order_by(col(OutboxMessage.created_at))).all())
    db.commit()
    return rows


def deliver(app: FastAPI, mail: MailSettings, **kwargs: Any) -> notifications.DeliveryReport:
    return notifications.deliver_pending(engine=app.state.engine, mail=mail, **kwargs)


def medical_words(text: str) -> list[str]:
    """Whatever of the case's clinical text shows up in ``text``."""
    words = ["hemangioma", "t11", "vertebroplasty", "radiotherapy", "numbness"]
    return [v for v in CLINICAL.values() if v in text] + [w for w in words if w in text.lower()]


# --- templates --------------------------------------------------------------------------------


CASE_KINDS = sorted(
    set(NotificationKind) - templates.ACCOUNT_TEMPLATES.keys() - account_mails.KINDS
)


@pytest.mark.parametrize("kind", CASE_KINDS)
def test_every_kind_renders_a_generic_message_with_the_link(kind: NotificationKind):
    link = f"https://portal.example/cases/{uuid.uuid4()}"
    rendered = templates.render(
        kind=kind,
        recipient_name="Anna Berg",
        reference="SO-7KQ2MX",
        link=link,
        due_at=dt.datetime(2026, 3, 12, 14, 0, tzinfo=dt.UTC),
    )
    assert rendered.body.startswith("Hello Anna Berg,\n\n")
    assert f"\n\n{link}\n\n" in rendered.body
    assert templates.PRIVACY_LINE in rendered.body
    assert "{" not in rendered.subject + rendered.body
    assert "\n" not in rendered.subject and len(rendered.subject) <= 200
    if kind in {K.due_soon, K.case_overdue, K.case_submitted}:
        assert "by 12 Mar 2026, 14:00 UTC" in rendered.body


@pytest.mark.parametrize("kind", [*CASE_KINDS, *templates.ACCOUNT_TEMPLATES])
def test_every_kind_renders_in_russian_for_a_russian_reader(kind: NotificationKind):
    link = f"https://portal.example/cases/{uuid.uuid4()}"
    due = dt.datetime(2026, 3, 12, 14, 0, tzinfo=dt.UTC)
    with speaking("ru"):
        if kind in templates.ACCOUNT_TEMPLATES:
            rendered = templates.render_account(kind=kind, recipient_name="Анна Берг", link=link)
        else:
            rendered = templates.render(
                kind=kind, recipient_name="Анна Берг", reference="SO-7KQ2MX", link=link, due_at=due
            )
    assert rendered.body.startswith("Здравствуйте, Анна Берг!\n\n")
    assert rendered.body.endswith(
        "Портал второго мнения\nЭто письмо отправлено автоматически; ответы на него не читаются.\n"
    )
    words = f"{rendered.subject} {rendered.body}".replace(link, "")
    latin = set(re.findall(r"[A-Za-z]{3,}", words))
    assert latin <= {"UTC", "PDF"}  # and SO-…: no English word is left
    if kind in {K.due_soon, K.case_overdue, K.case_submitted}:
        assert "до 12 мар. 2026\u202fг., 14:00 UTC" in rendered.body


def test_a_mail_speaks_its_recipients_language_not_the_senders(
    db: Session, settings: Settings, scene: Scene
):
    scene.patient_user.language = "ru"
    with speaking("en"):  # e.g. the English-speaking specialist's request causes it
        to_patient = notifications.notify(
            session=db,
            kind=K.info_requested,
            recipient=scene.patient_user,
            case=scene.case,
            base_url=settings.base_url,
        )
    with speaking("ru"):
        to_specialist = queue(db, settings, scene, K.info_provided)
    assert to_patient.subject == "У вашего специалиста есть вопрос к вам"
    assert to_specialist.subject.startswith("The patient answered your question: SO-")
    scene.patient_user.language = "xx"  # no catalogue: English
    fallback = notifications.notify(
        session=db,
        kind=K.opinion_delivered,
        recipient=scene.patient_user,
        case=scene.case,
        base_url=settings.base_url,
    )
    assert fallback.subject == "Your second opinion is ready"
    db.rollback()


def test_every_kind_queued_for_a_real_case_carries_no_clinical_text(
    db: Session, settings: Settings, scene: Scene
):
    for kind in CASE_KINDS:
        queue(db, settings, scene, kind)
    rows = outbox_rows(db)
    assert sorted(row.kind for row in rows) == CASE_KINDS
    for row in rows:
        text = f"{row.subject}\n{row.body_text}"
        assert medical_words(text) == [], row.kind
        assert PATIENT_NAME not in text and scene.patient.email not in text
        assert f"{settings.base_url}/cases/{scene.case.id}" in row.body_text
        assert scene.case.reference in row.body_text


# --- delivery over SMTP -----------------------------------------------------------------------


def test_specialist_and_patient_receive_a_link_and_nothing_medical(
    app: FastAPI, db: Session, settings: Settings, scene: Scene, smtpd: SmtpServer
):
    to_specialist = queue(db, settings, scene, K.case_assigned)
    notifications.notify(
        session=db,
        kind=K.opinion_delivered,
        recipient=scene.patient_user,
        case=scene.case,
        base_url=settings.base_url,
    )
    db.commit()

    report = deliver(app, smtpd.mail())

    assert (report.claimed, report.sent, report.retrying, report.failed) == (2, 2, 0, 0)
    by_recipient = {r.rcpt_tos[0]: r for r in smtpd.received}
    assert sorted(by_recipient) == sorted([scene.specialist.email, scene.patient.email])
    link = f"{settings.base_url}/cases/{scene.case.id}"
    staff_mail, patient_mail = (
        by_recipient[scene.specialist.email],
        by_recipient[scene.patient.email],
    )

    assert staff_mail.mail_from == "no-reply@portal.test"
    assert staff_mail.message["From"] == "Second Opinion Portal <no-reply@portal.test>"
    assert staff_mail.message["To"] == scene.specialist.email
    assert staff_mail.message["Subject"] == f"New case assigned to you: {scene.case.reference}"
    assert staff_mail.message["Message-ID"] == f"<{to_specialist.id}@portal.test>"
    assert staff_mail.message["Auto-Submitted"] == "auto-generated"
    sent_at = email.utils.parsedate_to_datetime(staff_mail.message["Date"])
    assert abs(sent_at - utcnow()) < dt.timedelta(minutes=1)
    assert staff_mail.message.get_content_type() == "text/plain"
    assert staff_mail.message.get_content_charset() == "utf-8"
    assert staff_mail.body.startswith(f"Hello {scene.specialist.full_name},")
    assert link in staff_mail.body and "sign in" in staff_mail.body

    assert patient_mail.message["Subject"] == "Your second opinion is ready"
    assert patient_mail.body.startswith(f"Hello {PATIENT_NAME},")
    assert link in patient_mail.body

    for received in (staff_mail, patient_mail):
        assert medical_words(f"{received.message['Subject']}\n{received.body}") == []
    assert PATIENT_NAME not in staff_mail.body and "Irina" not in staff_mail.body
    assert scene.patient.email not in staff_mail.body

    rows = outbox_rows(db)
    assert {row.status for row in rows} == {OutboxStatus.sent}
    assert all(row.sent_at and row.attempts == 1 and row.claimed_by is None for row in rows)
    assert deliver(app, smtpd.mail()).claimed == 0  # sent once, never again


def test_log_backend_keeps_the_message_and_logs_no_personal_data(
    app: FastAPI, db: Session, settings: Settings, scene: Scene, caplog
):
    caplog.set_level(logging.INFO, logger="portal.notifications")
    message = queue(db, settings, scene)

    report = deliver(app, MailSettings(backend="log"))

    assert report.sent == 1
    [row] = outbox_rows(db)
    assert row.status == OutboxStatus.sent and row.body_text == message.body_text
    [record] = [r for r in caplog.records if r.name == "portal.notifications"]
    line = JsonFormatter().format(record)
    assert f"mail {message.id} (case_assigned) delivered to the log" in line
    for value in (
        scene.specialist.email,
        scene.specialist.full_name,
        scene.patient.email,
        PATIENT_NAME,
        message.subject,
        *CLINICAL.values(),
    ):
        assert value not in line


def test_refusing_server_backs_off_then_gives_up_without_raising(
    app: FastAPI, db: Session, settings: Settings, scene: Scene, smtpd: SmtpServer
):
    smtpd.collector.refuse_with = "550 5.1.1 <nobody@example.org>: mailbox unavailable"
    queue(db, settings, scene)
    mail, t0 = smtpd.mail(max_attempts=3, backoff_seconds=60), utcnow()

    first = deliver(app, mail, now=t0)
    [row] = outbox_rows(db)
    assert (first.claimed, first.sent, first.retrying, first.failed) == (1, 0, 1, 0)
    assert row.status == OutboxStatus.pending and row.attempts == 1
    assert row.next_attempt_at == t0 + dt.timedelta(seconds=60)
    assert row.last_error == "SMTPRecipientsRefused 550"

    assert deliver(app, mail, now=t0 + dt.timedelta(seconds=59)).claimed == 0  # backing off
    second = deliver(app, mail, now=t0 + dt.timedelta(seconds=60))
    [row] = outbox_rows(db)
    assert second.retrying == 1 and row.attempts == 2
    assert row.next_attempt_at == t0 + dt.timedelta(seconds=60 + 120)  # doubled

    third = deliver(app, mail, now=t0 + dt.timedelta(seconds=180))
    [row] = outbox_rows(db)
    assert third.failed == 1 and row.status == OutboxStatus.failed and row.attempts == 3
    assert scene.specialist.email not in (row.last_error or "")
    assert deliver(app, mail, now=t0 + dt.timedelta(days=1)).claimed == 0
    assert smtpd.received == []


def test_unreachable_server_is_retried_later(
    app: FastAPI, db: Session, settings: Settings, scene: Scene
):
    for _ in range(3):
        queue(db, settings, scene)
    mail, t0 = mail_settings(port=free_port_block()), utcnow()  # nobody listens there

    report = deliver(app, mail, now=t0)

    assert (report.claimed, report.sent, report.retrying, report.failed) == (3, 0, 3, 0)
    rows = outbox_rows(db)
    assert {(r.status, r.attempts, r.last_error) for r in rows} == {
        (OutboxStatus.pending, 1, "ConnectionRefusedError")
    }
    assert {r.next_attempt_at for r in rows} == {t0 + dt.timedelta(seconds=60)}


def test_rolled_back_change_sends_nothing(
    app: FastAPI, db: Session, settings: Settings, scene: Scene, smtpd: SmtpServer
):
    notifications.notify(
        session=db,
        kind=K.case_assigned,
        recipient=scene.specialist_user,
        case=scene.case,
        base_url=settings.base_url,
    )
    db.rollback()  # the workflow change failed

    assert outbox_rows(db) == []
    assert deliver(app, smtpd.mail()).claimed == 0
    assert smtpd.received == []


def test_concurrent_runs_send_each_message_exactly_once(
    db: Session, settings: Settings, scene: Scene, smtpd: SmtpServer
):
    for _ in range(40):
        notifications.notify(
            session=db,
            kind=K.case_assigned,
            recipient=scene.specialist_user,
            case=scene.case,
            base_url=settings.base_url,
        )
    db.commit()
    smtpd.collector.delay = 0.02  # keep both runs busy at the same time
    mail = smtpd.mail(batch_size=4)
    start = threading.Barrier(2)
    reports: list[notifications.DeliveryReport] = []
    errors: list[BaseException] = []

    def worker() -> None:
        engine = create_db_engine(settings.database_url)  # as a second process would
        try:
            start.wait()
            reports.append(notifications.deliver_pending(engine=engine, mail=mail))
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    message_ids = Counter(r.message["Message-ID"] for r in smtpd.received)
    assert len(message_ids) == 40 and set(message_ids.values()) == {1}
    assert sum(r.sent for r in reports) == 40 and sum(r.claimed for r in reports) == 40
    rows = outbox_rows(db)
    assert {(r.status, r.attempts) for r in rows} == {(OutboxStatus.sent, 1)}


def test_coordinators_are_mailed_only_while_active(
    app: FastAPI,
    accounts: Accounts,
    db: Session,
    settings: Settings,
    scene: Scene,
    smtpd: SmtpServer,
):
    active = [accounts.staff(Role.coordinator) for _ in range(2)]
    retired = accounts.staff(Role.coordinator)
    accounts.staff(Role.admin)
    user = db.get(User, retired.user_id)
    assert user is not None
    user.is_active = False
    db.add(user)
    db.commit()

    queued = notifications.notify_coordinators(
        session=db, kind=K.triage_needed, case=scene.case, base_url=settings.base_url
    )
    db.commit()
    deliver(app, smtpd.mail())

    assert sorted(m.to_address for m in queued) == sorted(a.email for a in active)
    assert sorted(r.rcpt_tos[0] for r in smtpd.received) == sorted(a.email for a in active)
    for received in smtpd.received:
        assert received.message["Subject"] == f"Case needs triage: {scene.case.reference}"
        assert PATIENT_NAME not in received.body and medical_words(received.body) == []


def test_a_crashed_workers_messages_are_taken_over_when_its_lease_ends(
    app: FastAPI, db: Session, settings: Settings, scene: Scene, smtpd: SmtpServer
):
    expired, busy, exhausted = (queue(db, settings, scene) for _ in range(3))
    t0, mail = utcnow(), smtpd.mail(max_attempts=3)
    leases = {
        expired.id: (t0 - dt.timedelta(seconds=1), 1),  # its worker died mid-send
        busy.id: (t0 + dt.timedelta(minutes=5), 1),  # another worker is sending it now
        exhausted.id: (t0 - dt.timedelta(seconds=1), 3),  # died on the last allowed attempt
    }
    for row in outbox_rows(db):
        row.claimed_until, row.attempts = leases[row.id]
        row.claimed_by = "dead-worker"
        db.add(row)
    db.commit()

    report = deliver(app, mail, now=t0)

    assert (report.claimed, report.sent) == (1, 1)
    assert [r.message["Message-ID"] for r in smtpd.received] == [f"<{expired.id}@portal.test>"]
    rows = {row.id: row for row in outbox_rows(db)}
    assert (rows[expired.id].status, rows[expired.id].attempts) == (OutboxStatus.sent, 2)
    assert (rows[busy.id].status, rows[busy.id].claimed_by) == (OutboxStatus.pending, "dead-worker")
    assert (rows[exhausted.id].status, rows[exhausted.id].last_error) == (
        OutboxStatus.failed,
        "LeaseExpired",
    )


def test_a_run_near_the_end_of_its_lease_hands_messages_back_unsent(
    app: FastAPI,
    db: Session,
    settings: Settings,
    scene: Scene,
    smtpd: SmtpServer,
    monkeypatch,
):
    for _ in range(3):
        queue(db, settings, scene)
    # The first batch's clock: lease taken at 0, first message at 0, then the lease is nearly
    # over (600 s lease - 8 x 20 s timeout = 440 s); later batches see a steady clock.
    readings = iter([0.0, 0.0, 441.0])
    monkeypatch.setattr(
        notifications, "time", SimpleNamespace(monotonic=lambda: next(readings, 10_000.0))
    )

    report = deliver(app, smtpd.mail(batch_size=5, lease_seconds=600, timeout_seconds=20))

    assert (report.claimed, report.sent) == (3, 3)
    assert len(smtpd.received) == 3
    rows = outbox_rows(db)
    # Two messages were handed back and claimed again: the attempt that never started
    # does not count.
    assert {(r.status, r.attempts) for r in rows} == {(OutboxStatus.sent, 1)}


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_tls_relay_with_a_private_ca(
    app: FastAPI, db: Session, settings: Settings, scene: Scene, certificate, security: str
):
    cert_path, key_path = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert_path, key_path)
    collector = Collector()
    options: dict[str, Any] = (
        {
            "tls_context": server_tls,
            "require_starttls": True,
            "authenticator": collector.authenticate,
            "auth_required": True,
        }
        if security == "starttls"
        else {"ssl_context": server_tls}
    )
    credentials: dict[str, Any] = (
        {"username": SMTP_LOGIN, "password": SMTP_PASSWORD} if security == "starttls" else {}
    )
    queue(db, settings, scene)
    t0 = utcnow()
    with running(collector, **options) as server:
        untrusted = server.mail(security=security, **credentials)
        refused = deliver(app, untrusted, now=t0)
        [row] = outbox_rows(db)
        assert refused.retrying == 1 and row.last_error == "SSLCertVerificationError"
        assert collector.received == []

        trusted = server.mail(security=security, ca_file=cert_path, **credentials)
        report = deliver(app, trusted, now=t0 + dt.timedelta(minutes=1))

    assert report.sent == 1
    assert [r.rcpt_tos for r in collector.received] == [[scene.specialist.email]]
    assert collector.logins == ([SMTP_LOGIN.encode()] if security == "starttls" else [])


def test_old_delivered_messages_are_purged(db: Session, settings: Settings, scene: Scene):
    now = utcnow()
    month_ago = now - dt.timedelta(days=31)
    states = [
        (OutboxStatus.sent, month_ago),
        (OutboxStatus.failed, month_ago),
        (OutboxStatus.pending, month_ago),
        (OutboxStatus.sent, now - dt.timedelta(days=1)),
    ]
    for status, created_at in states:
        message = queue(db, settings, scene)
        message.status, message.created_at = status, created_at
        db.add(message)
    db.commit()

    purged = notifications.purge_delivered(session=db, mail=MailSettings(), now=now)
    db.commit()

    assert purged == 2
    assert sorted((r.status, r.created_at) for r in outbox_rows(db)) == sorted(states[2:])


# --- settings ---------------------------------------------------------------------------------


def test_settings_come_from_the_environment_and_refuse_unsafe_setups(monkeypatch):
    monkeypatch.setenv("PORTAL_MAIL_BACKEND", "smtp")
    monkeypatch.setenv("PORTAL_MAIL_SMTP_HOST", "relay.example.org")
    monkeypatch.setenv("PORTAL_MAIL_USERNAME", "portal")
    monkeypatch.setenv("PORTAL_MAIL_PASSWORD", "relay-secret-value")
    mail = MailSettings()
    assert (mail.backend, mail.smtp_host, mail.smtp_port, mail.security) == (
        "smtp",
        "relay.example.org",
        587,
        "starttls",
    )
    assert "relay-secret-value" not in repr(mail)
    assert mail.envelope_sender == "no-reply@localhost"
    assert [mail.retry_delay(n) for n in (1, 2, 3)] == [120, 240, 480]
    assert mail.retry_delay(20) == mail.backoff_max_seconds

    with pytest.raises(ValidationError, match="SMTP_HOST"):
        MailSettings(backend="smtp", smtp_host="")
    with pytest.raises(ValidationError, match="without TLS"):
        MailSettings(security="none", username="portal")
    with pytest.raises(ValidationError, match="e-mail address"):
        MailSettings(from_address="Second Opinion Portal")
