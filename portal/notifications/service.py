"""Queue notifications with the change that causes them; deliver them later, exactly once.

``notify`` only adds an outbox row to the caller's session: the mail exists if and only if the
workflow change commits. ``deliver_pending`` claims due rows with a lease in a short
transaction, sends them outside any transaction, and records each outcome under the lease.
See docs/notifications.md.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select, update

from portal.accounts.models import Role, User
from portal.cases.models import Case
from portal.db import utcnow
from portal.i18n import speaking
from portal.notifications import templates
from portal.notifications.models import NotificationKind, OutboxMessage, OutboxStatus
from portal.notifications.settings import MailSettings
from portal.notifications.transport import (
    ConnectionFailed,
    Transport,
    describe_error,
    make_transport,
)
from portal.sealing import SealedValueInvalid, SecretBox

logger = logging.getLogger("portal.notifications")

# A worker starts no new message this many SMTP timeouts before its lease ends.
_LEASE_MARGIN_TIMEOUTS = 8
_SEALED_BODY_PURPOSE = "outbox-body"


class SealedBodyUnreadable(Exception):
    """A sealed body could not be opened: no key given to this run, or another secret."""


def case_link(*, base_url: str, case_id: uuid.UUID) -> str:
    """The case page: its random id only, nothing about the patient in the URL."""
    return f"{base_url.rstrip('/')}/cases/{case_id}"


def notify(
    *, session: Session, kind: NotificationKind, recipient: User, case: Case, base_url: str
) -> OutboxMessage:
    """Render the message for ``kind`` in the recipient's language and add it to the caller's
    transaction (not committed)."""
    with speaking(recipient.language):
        rendered = templates.render(
            kind=kind,
            recipient_name=recipient.full_name,
            reference=case.reference,
            link=case_link(base_url=base_url, case_id=case.id),
            due_at=case.due_at,
        )
    message = OutboxMessage(
        kind=kind,
        recipient_id=recipient.id,
        to_address=recipient.email,
        subject=rendered.subject,
        body_text=rendered.body,
        case_id=case.id,
    )
    session.add(message)
    return message


def notify_account(
    *, session: Session, kind: NotificationKind, recipient: User, base_url: str
) -> OutboxMessage:
    """Queue a message about the recipient's own account, in their language (not committed);
    it names no case."""
    with speaking(recipient.language):
        rendered = templates.render_account(
            kind=kind, recipient_name=recipient.full_name, link=f"{base_url.rstrip('/')}/login"
        )
    message = OutboxMessage(
        kind=kind,
        recipient_id=recipient.id,
        to_address=recipient.email,
        subject=rendered.subject,
        body_text=rendered.body,
    )
    session.add(message)
    return message


def queue_account_mail(
    *,
    session: Session,
    kind: NotificationKind,
    recipient: User,
    subject: str,
    body: str,
    secret_body: str | None = None,
    box: SecretBox | None = None,
) -> OutboxMessage:
    """Queue a message about the recipient's account, rendered by the caller (not committed).

    ``secret_body``, when given, is the message actually sent (it carries a secret such as a
    reset link): it is sealed with ``box`` and ``body`` (the same text without the secret) is
    all the outbox shows. The sealed copy is dropped once the message is sent or given up.
    """
    message = OutboxMessage(
        kind=kind,
        recipient_id=recipient.id,
        to_address=recipient.email,
        subject=subject,
        body_text=body,
    )
    if secret_body is not None:
        if box is None:
            raise ValueError("a secret body needs a box to seal it")
        message.body_sealed = box.seal(_sealed_purpose(message.id), secret_body.encode())
    session.add(message)
    return message


def _sealed_purpose(message_id: uuid.UUID) -> str:
    """Bound to the row: a sealed body copied onto another message does not open."""
    return f"{_SEALED_BODY_PURPOSE}:{message_id}"


def notify_coordinators(
    *, session: Session, kind: NotificationKind, case: Case, base_url: str
) -> list[OutboxMessage]:
    """One message per active coordinator, in the caller's transaction (not committed)."""
    coordinators = session.exec(
        select(User)
        .where(User.role == Role.coordinator, col(User.is_active).is_(True))
        .order_by(col(User.id))
    ).all()
    return [
        notify(session=session, kind=kind, recipient=user, case=case, base_url=base_url)
        for user in coordinators
    ]


@dataclass
class DeliveryReport:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    """Failed this time, due again after the backoff."""
    failed: int = 0
    """Failed for the last allowed time: status ``failed``."""


def deliver_pending(
    *,
    engine: Engine,
    mail: MailSettings,
    box: SecretBox | None = None,
    now: datetime | None = None,
    limit: int = 100,
) -> DeliveryReport:
    """Send up to ``limit`` due messages; never raises for a mail failure.

    Safe to run in several threads or processes at once: each message is claimed by exactly
    one run. ``box`` opens sealed bodies (a run without it fails those messages' attempts).
    ``now`` fixes the clock (tests); by default the wall clock is read at each step.
    """
    run = _Run(engine, mail, make_transport(mail), now, box)
    try:
        while run.report.claimed < limit:
            token, batch = _claim(run, min(mail.batch_size, limit - run.report.claimed))
            if not batch:
                break
            run.report.claimed += len(batch)
            if not _send_batch(run, token, batch):
                break  # the server is unreachable: leave the rest for the next run
    finally:
        run.transport.close()
    return run.report


def purge_delivered(*, session: Session, mail: MailSettings, now: datetime | None = None) -> int:
    """Delete sent and failed messages older than the retention period (caller commits)."""
    cutoff = (now or utcnow()) - timedelta(days=mail.retention_days)
    result: Any = session.exec(
        delete(OutboxMessage).where(
            col(OutboxMessage.status).in_([OutboxStatus.sent, OutboxStatus.failed]),
            col(OutboxMessage.created_at) < cutoff,
        )
    )
    return int(result.rowcount)


def list_messages(
    *, session: Session, case_id: uuid.UUID | None = None, status: OutboxStatus | None = None
) -> Sequence[OutboxMessage]:
    """Outbox rows, oldest first, optionally for one case or in one status."""
    query = select(OutboxMessage).order_by(col(OutboxMessage.created_at), col(OutboxMessage.id))
    if case_id is not None:
        query = query.where(OutboxMessage.case_id == case_id)
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    return session.exec(query).all()


@dataclass
class _Run:
    """One ``deliver_pending`` call: where rows live, how mail leaves, what happened."""

    engine: Engine
    mail: MailSettings
    transport: Transport
    fixed_now: datetime | None
    box: SecretBox | None = None
    report: DeliveryReport = field(default_factory=DeliveryReport)

    def now(self) -> datetime:
        return self.fixed_now or utcnow()


def _lease_free(now: datetime) -> ColumnElement[bool]:
    claimed_until = col(OutboxMessage.claimed_until)
    return or_(claimed_until.is_(None), claimed_until < now)


def _claim(run: _Run, limit: int) -> tuple[str, list[OutboxMessage]]:
    """Lease up to ``limit`` due messages to a fresh token, in one short transaction.

    The conditional UPDATE is what makes a claim exclusive on every backend: a row another
    worker leased meanwhile no longer matches it. ``SKIP LOCKED`` (PostgreSQL; SQLite ignores
    it and serialises writers with ``BEGIN IMMEDIATE``) only spares workers waiting on rows
    someone else is claiming.
    """
    token, now = uuid.uuid4().hex, run.now()
    claimable = and_(
        col(OutboxMessage.status) == OutboxStatus.pending,
        col(OutboxMessage.next_attempt_at) <= now,
        col(OutboxMessage.attempts) < run.mail.max_attempts,
        _lease_free(now),
    )
    with Session(run.engine, expire_on_commit=False) as session:
        _give_up_abandoned(session, run.mail, now)
        ids = session.exec(
            select(OutboxMessage.id)
            .where(claimable)
            .order_by(col(OutboxMessage.next_attempt_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if ids:
            session.exec(
                update(OutboxMessage)
                .where(col(OutboxMessage.id).in_(ids), claimable)
                .values(
                    claimed_by=token,
                    claimed_until=now + timedelta(seconds=run.mail.lease_seconds),
                    attempts=col(OutboxMessage.attempts) + 1,
                )
                .execution_options(synchronize_session=False)
            )
        batch = session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.claimed_by) == token)
            .order_by(col(OutboxMessage.next_attempt_at))
        ).all()
        session.commit()
    return token, list(batch)


def _give_up_abandoned(session: Session, mail: MailSettings, now: datetime) -> None:
    """A message whose last allowed attempt never reported back (a crashed worker) fails."""
    session.exec(
        update(OutboxMessage)
        .where(
            col(OutboxMessage.status) == OutboxStatus.pending,
            col(OutboxMessage.attempts) >= mail.max_attempts,
            _lease_free(now),
        )
        .values(
            status=OutboxStatus.failed,
            body_sealed=None,
            last_error="LeaseExpired",
            claimed_by=None,
            claimed_until=None,
        )
        .execution_options(synchronize_session=False)
    )


def _send_batch(run: _Run, token: str, batch: list[OutboxMessage]) -> bool:
    """Send each claimed message and record it; False when the server could not be reached."""
    mail = run.mail
    stop_at = time.monotonic() + mail.lease_seconds - _LEASE_MARGIN_TIMEOUTS * mail.timeout_seconds
    unreachable: BaseException | None = None
    for index, message in enumerate(batch):
        if unreachable is None and time.monotonic() > stop_at:
            _release(run, token, [m.id for m in batch[index:]])
            break
        error = unreachable
        if error is None:
            try:
                _open_body(run, message)
                run.transport.send(message, now=run.now())
            except ConnectionFailed as exc:
                error = unreachable = exc
            except Exception as exc:  # one bad message must not stop the queue
                error = exc
        _record(run, token, message, error)
    return unreachable is None


def _open_body(run: _Run, message: OutboxMessage) -> None:
    """Put a sealed body in place for sending, on the claimed copy only (it is detached from
    any session: the row keeps the text without the secret)."""
    if message.body_sealed is None:
        return
    if run.box is None:
        raise SealedBodyUnreadable()
    try:
        opened = run.box.open(_sealed_purpose(message.id), message.body_sealed)
    except SealedValueInvalid as exc:
        raise SealedBodyUnreadable() from exc
    message.body_text = opened.decode()


def _record(run: _Run, token: str, message: OutboxMessage, error: BaseException | None) -> None:
    """Write one outcome, only if this run still holds the lease on the row."""
    with Session(run.engine, expire_on_commit=False) as session:
        row = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.id == message.id, col(OutboxMessage.claimed_by) == token)
            .with_for_update()
        ).first()
        if row is None:
            logger.warning(
                "mail %s (%s): lease lost before its outcome was recorded", message.id, message.kind
            )
            return
        row.claimed_by, row.claimed_until = None, None
        if error is None:
            row.status, row.sent_at, row.last_error = OutboxStatus.sent, run.now(), None
            row.body_sealed = None  # the secret has left; it is not kept readable here
            run.report.sent += 1
            if run.mail.backend == "smtp":
                logger.info("mail %s (%s) sent", row.id, row.kind, extra=_log_fields(row))
        else:
            _record_failure(run, row, describe_error(error))
        session.add(row)
        session.commit()


def _record_failure(run: _Run, row: OutboxMessage, error: str) -> None:
    row.last_error = error[:200]
    fields = _log_fields(row) | {"error": row.last_error, "attempts": row.attempts}
    if row.attempts >= run.mail.max_attempts:
        row.status = OutboxStatus.failed
        row.body_sealed = None
        run.report.failed += 1
        logger.error(
            "mail %s (%s) failed for good after %d attempts: %s",
            *(row.id, row.kind, row.attempts, row.last_error),
            extra=fields,
        )
        return
    row.next_attempt_at = run.now() + timedelta(seconds=run.mail.retry_delay(row.attempts))
    run.report.retrying += 1
    logger.warning(
        "mail %s (%s) not delivered (attempt %d): %s; will retry",
        *(row.id, row.kind, row.attempts, row.last_error),
        extra=fields,
    )


def _log_fields(row: OutboxMessage) -> dict[str, str | int]:
    """Identifiers only: never the address, the subject or the body."""
    return {"message_id": str(row.id), "kind": str(row.kind)}


def _release(run: _Run, token: str, ids: list[uuid.UUID]) -> None:
    """Hand messages back unsent (the lease is running out): those attempts did not happen."""
    with Session(run.engine) as session:
        session.exec(
            update(OutboxMessage)
            .where(col(OutboxMessage.id).in_(ids), col(OutboxMessage.claimed_by) == token)
            .values(claimed_by=None, claimed_until=None, attempts=col(OutboxMessage.attempts) - 1)
            .execution_options(synchronize_session=False)
        )
        session.commit()
    run.report.claimed -= len(ids)
