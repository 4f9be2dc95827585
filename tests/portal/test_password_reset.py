"""Password reset by e-mail, end to end with the real SMTP test server, on both databases."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from portal.accounts import password_reset
from portal.accounts.models import AuthSession, PasswordResetToken, Role, User
from portal.audit.models import AuditEvent
from portal.audit.service import AuditContext
from portal.db import utcnow
from portal.errors import PortalError
from portal.notifications import service as notifications
from portal.notifications.models import NotificationKind, OutboxMessage, OutboxStatus
from tests.fixtures.app import PASSWORD, Account, Accounts
from tests.fixtures.logs import SensitiveValues
from tests.fixtures.smtp import SmtpServer
from tests.portal.test_pages import check_page, form_token

NEW_PASSWORD = "a brand new passphrase 2027"
LINK = re.compile(r"https?://[^/\s]+/password-reset/([A-Za-z0-9_\-]{43})")


def ask(client: TestClient, email: str) -> dict[str, str]:
    response = client.post("/api/auth/password-reset", json={"email": email})
    assert response.status_code == 202, response.text
    return dict(response.json())


def outbox(db: Session, kind: NotificationKind | None = None) -> list[OutboxMessage]:
    db.expire_all()
    query = select(OutboxMessage).order_by(col(OutboxMessage.created_at))
    if kind is not None:
        query = query.where(OutboxMessage.kind == kind)
    rows = list(db.exec(query).all())
    db.commit()
    return rows


def deliver(app: FastAPI, smtpd: SmtpServer) -> None:
    notifications.deliver_pending(engine=app.state.engine, mail=smtpd.mail(), box=app.state.box)


def mailed_token(app: FastAPI, smtpd: SmtpServer, patient: Account) -> str:
    deliver(app, smtpd)
    mails = [m for m in smtpd.received if m.rcpt_tos == [patient.email]]
    found = LINK.search(mails[-1].body)
    assert found, mails[-1].body
    return found.group(1)


def test_reset_by_mail_works_once_and_ends_every_session(
    client: TestClient,
    app: FastAPI,
    accounts: Accounts,
    db: Session,
    smtpd: SmtpServer,
    sensitive: SensitiveValues,
):
    patient = accounts.patient()
    other_device = accounts.sign_in(
        Account(patient.user_id, patient.email, PASSWORD, Role.patient, patient.full_name)
    )
    answer = ask(client, patient.email.upper())
    assert "If an account exists for this address" in answer["detail"]

    queued = outbox(db, NotificationKind.password_reset)
    assert len(queued) == 1 and queued[0].body_sealed
    assert "/password-reset/" not in queued[0].body_text  # the link is sealed, not readable

    token = mailed_token(app, smtpd, patient)
    sensitive.add(token)
    mail = smtpd.received[-1]
    assert mail.message["Subject"] == "Choose a new password"
    assert f"Hello {patient.full_name}," in mail.body and "30 minutes" in mail.body
    assert outbox(db, NotificationKind.password_reset)[0].body_sealed is None  # gone once sent
    stored = db.exec(select(PasswordResetToken)).one()
    db.commit()
    assert stored.token_hash != token and token not in stored.model_dump_json()
    assert stored.expires_at - stored.created_at == timedelta(minutes=30)

    page = check_page(client.get(f"/password-reset/{token}"))
    form = page.form(f"/password-reset/{token}")
    assert {"password", "password_again"} <= form["inputs"].keys()
    done = client.post(
        f"/password-reset/{token}",
        data={
            "csrf_token": form["inputs"]["csrf_token"],
            "password": NEW_PASSWORD,
            "password_again": NEW_PASSWORD,
        },
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/login?reset=1"

    for device in (patient, other_device):
        assert client.get("/api/me", headers=device.headers).status_code == 401
    db.expire_all()
    assert all(s.revoked_at is not None for s in db.exec(select(AuthSession)).all())
    db.commit()
    old = {"email": patient.email, "password": PASSWORD}
    assert client.post("/api/auth/login", json=old).status_code == 401
    new = {"email": patient.email, "password": NEW_PASSWORD}
    assert client.post("/api/auth/login", json=new).status_code == 200

    again = client.get(f"/password-reset/{token}")
    assert again.status_code == 410
    assert 'href="/password-reset"' in again.text or 'action="/password-reset"' in again.text
    confirm = client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "password": "yet another one 77"}
    )
    assert confirm.status_code == 410

    deliver(app, smtpd)
    changed = smtpd.received[-1]
    assert changed.message["Subject"] == "Your password was changed"
    assert "signed out" in changed.body and token not in changed.body
    actions = db.exec(
        select(AuditEvent.action, AuditEvent.outcome).where(
            col(AuditEvent.action).like("account.password_reset%")
        )
    ).all()
    assert ("account.password_reset_request", "success") in actions
    assert ("account.password_reset", "success") in actions


def test_an_unknown_address_gets_the_same_answer_and_no_mail(
    client: TestClient, accounts: Accounts, db: Session, app: FastAPI, smtpd: SmtpServer
):
    patient = accounts.patient()
    known = client.post("/api/auth/password-reset", json={"email": patient.email})
    unknown = client.post("/api/auth/password-reset", json={"email": "nobody@example.org"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    ignored = {"x-request-id", "date", "content-length"}
    assert known.headers.keys() - ignored == unknown.headers.keys() - ignored
    deliver(app, smtpd)
    assert [m.rcpt_tos for m in smtpd.received] == [[patient.email]]

    # The pages answer alike too (the form token aside).
    def answered(email: str) -> str:
        token = form_token(client, "/password-reset")
        page = client.post("/password-reset", data={"email": email, "csrf_token": token})
        assert page.status_code == 200
        return re.sub(r'name="csrf_token" value="[^"]*"', "", page.text)

    assert answered(patient.email) == answered("someone-else@example.org")
    assert 'id="reset-requested"' in answered("x@example.org")


def test_an_expired_link_is_refused_and_a_newer_link_ends_the_older(
    client: TestClient, accounts: Accounts, db: Session, app: FastAPI, smtpd: SmtpServer
):
    patient = accounts.patient()
    ask(client, patient.email)
    first = mailed_token(app, smtpd, patient)
    ask(client, patient.email)
    second = mailed_token(app, smtpd, patient)
    body = {"token": first, "password": NEW_PASSWORD}
    refused = client.post("/api/auth/password-reset/confirm", json=body)
    assert refused.status_code == 410
    assert "Ask for a new one" in refused.json()["detail"]

    db.expire_all()
    for link in db.exec(select(PasswordResetToken)).all():
        link.expires_at = utcnow() - timedelta(seconds=1)
        db.add(link)
    db.commit()
    expired = client.post(
        "/api/auth/password-reset/confirm", json={"token": second, "password": NEW_PASSWORD}
    )
    assert expired.status_code == 410
    page = client.get(f"/password-reset/{second}")
    assert page.status_code == 410 and 'id="reset-link-invalid"' in page.text
    unknown = client.post(
        "/api/auth/password-reset/confirm", json={"token": "x" * 43, "password": NEW_PASSWORD}
    )
    assert unknown.status_code == 410
    still = client.post("/api/auth/login", json={"email": patient.email, "password": PASSWORD})
    assert still.status_code == 200  # refused links changed nothing


def test_a_weak_password_is_refused_without_spending_the_link(
    client: TestClient, accounts: Accounts, app: FastAPI, smtpd: SmtpServer
):
    patient = accounts.patient()
    ask(client, patient.email)
    token = mailed_token(app, smtpd, patient)
    weak = client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "password": "password1234"}
    )
    assert weak.status_code == 422 and "too common" in weak.json()["detail"]
    page = check_page(client.get(f"/password-reset/{token}"))
    csrf = page.form(f"/password-reset/{token}")["inputs"]["csrf_token"]
    differ = client.post(
        f"/password-reset/{token}",
        data={"csrf_token": csrf, "password": NEW_PASSWORD, "password_again": NEW_PASSWORD + "x"},
    )
    assert differ.status_code == 422 and "not the same" in differ.text
    ok = client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
    )
    assert ok.status_code == 204


def test_requests_are_throttled_per_address_and_per_client(
    client: TestClient, accounts: Accounts, db: Session, app: FastAPI, smtpd: SmtpServer
):
    settings = app.state.settings
    patient, other = accounts.patient(), accounts.patient()
    answers = [ask(client, patient.email) for _ in range(settings.password_reset_per_address + 1)]
    assert all(answer == answers[0] for answer in answers)
    assert len(outbox(db, NotificationKind.password_reset)) == settings.password_reset_per_address
    throttled = db.exec(
        select(AuditEvent).where(
            AuditEvent.action == "account.password_reset_request",
            AuditEvent.outcome == "throttled",
        )
    ).all()
    db.commit()
    assert len(throttled) == 1

    used = settings.password_reset_per_address + 1
    for index in range(settings.password_reset_per_client - used):
        ask(client, f"stranger-{index}@example.org")
    assert ask(client, other.email) == answers[0]  # over the client's limit: no mail
    deliver(app, smtpd)
    assert other.email not in {address for m in smtpd.received for address in m.rcpt_tos}


def test_two_requests_with_one_link_cannot_both_set_a_password(
    client: TestClient, accounts: Accounts, app: FastAPI, smtpd: SmtpServer
):
    patient = accounts.patient()
    ask(client, patient.email)
    token = mailed_token(app, smtpd, patient)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def use(password: str) -> None:
        with Session(app.state.engine, expire_on_commit=False) as session:
            barrier.wait()
            try:
                password_reset.reset_password(
                    session=session,
                    settings=app.state.settings,
                    box=app.state.box,
                    ctx=AuditContext.for_request(client_ip="198.51.100.7", request_id=None),
                    token=token,
                    password=password,
                )
            except PortalError as exc:
                outcomes.append(type(exc).__name__)
            else:
                outcomes.append("set")

    threads = [
        threading.Thread(target=use, args=(p,))
        for p in (NEW_PASSWORD, "the other new passphrase 31")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["ResetLinkInvalid", "set"]


def test_a_reset_keeps_two_step_sign_in(
    client: TestClient, accounts: Accounts, db: Session, app: FastAPI, smtpd: SmtpServer
):
    coordinator = accounts.staff(Role.coordinator)
    ask(client, coordinator.email)
    token = mailed_token(app, smtpd, coordinator)
    reset = {"token": token, "password": NEW_PASSWORD}
    assert client.post("/api/auth/password-reset/confirm", json=reset).status_code == 204
    user = db.get(User, coordinator.user_id)
    db.commit()
    assert user is not None and user.totp_enabled and user.totp_secret_sealed
    without_code = {"email": coordinator.email, "password": NEW_PASSWORD}
    assert client.post("/api/auth/login", json=without_code).status_code == 401
    with_code = without_code | {"otp": coordinator.next_otp()}
    assert client.post("/api/auth/login", json=with_code).status_code == 200


def test_sign_in_page_links_to_the_reset(client: TestClient):
    page = check_page(client.get("/login"))
    assert "/password-reset" in page.links
    ask_page = check_page(client.get("/password-reset"))
    assert "email" in ask_page.form("/password-reset")["inputs"]


def test_housekeeping_forgets_old_requests_and_links(
    client: TestClient, accounts: Accounts, db: Session, app: FastAPI
):
    patient = accounts.patient()
    ask(client, patient.email)
    db.expire_all()
    for link in db.exec(select(PasswordResetToken)).all():
        link.expires_at = utcnow() - timedelta(hours=2)
        db.add(link)
    db.commit()
    removed = password_reset.purge_expired(session=db, settings=app.state.settings)
    db.commit()
    assert removed == 1  # the link; the request is still inside its window
    assert db.exec(select(PasswordResetToken)).all() == []
    assert OutboxStatus.pending in {m.status for m in outbox(db)}


def test_a_sealed_body_is_sent_only_by_a_run_holding_the_key(
    client: TestClient, accounts: Accounts, db: Session, app: FastAPI, smtpd: SmtpServer
):
    patient = accounts.patient()
    ask(client, patient.email)
    keyless = notifications.deliver_pending(engine=app.state.engine, mail=smtpd.mail())
    assert (keyless.sent, keyless.retrying) == (0, 1) and smtpd.received == []
    row = outbox(db, NotificationKind.password_reset)[0]
    assert row.last_error == "SealedBodyUnreadable" and row.body_sealed
    # Moved onto another message, the sealed body does not open (bound to its row).
    db.expire_all()
    copy = db.get(OutboxMessage, row.id)
    assert copy is not None
    sealed = copy.body_sealed
    db.delete(copy)
    db.commit()
    db.add(
        OutboxMessage(
            kind=NotificationKind.password_reset,
            recipient_id=patient.user_id,
            to_address=patient.email,
            subject="Choose a new password",
            body_text="moved",
            body_sealed=sealed,
        )
    )
    db.commit()
    later = utcnow() + timedelta(hours=1)
    moved = notifications.deliver_pending(
        engine=app.state.engine, mail=smtpd.mail(), box=app.state.box, now=later
    )
    assert moved.sent == 0 and smtpd.received == []
