"""Getting a rendered outbox message out: over SMTP, or into the log (development).

Nothing here touches the database; ``service.deliver_pending`` claims rows, hands them to a
transport outside any transaction and records the outcome.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Protocol

from portal.notifications.models import OutboxMessage
from portal.notifications.settings import MailSettings

logger = logging.getLogger("portal.notifications")


class ConnectionFailed(Exception):
    """The SMTP server could not be reached or refused the session (TLS, login)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.cause = cause


class Transport(Protocol):
    def send(self, message: OutboxMessage, *, now: datetime) -> None: ...

    def close(self) -> None: ...


def build_email(message: OutboxMessage, *, mail: MailSettings, now: datetime) -> EmailMessage:
    """Plain-text UTF-8 mail with Date, a Message-ID stable across retries, Auto-Submitted."""
    email = EmailMessage()
    email["From"] = mail.from_address
    email["To"] = message.to_address
    email["Subject"] = message.subject
    email["Date"] = format_datetime(now)
    # The outbox id as Message-ID: a retry after a lost reply carries the same id, so
    # receiving systems can drop the duplicate.
    email["Message-ID"] = f"<{message.id}@{mail.envelope_sender.rpartition('@')[2]}>"
    email["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies, no loops
    email["X-Auto-Response-Suppress"] = "All"  # the same for Exchange
    email.set_content(message.body_text, charset="utf-8")
    return email


class LogTransport:
    """Development: the message stays readable in the outbox; the log says it went out."""

    def send(self, message: OutboxMessage, *, now: datetime) -> None:
        logger.info(
            "mail %s (%s) delivered to the log",
            message.id,
            message.kind,
            extra={"message_id": str(message.id), "kind": str(message.kind)},
        )

    def close(self) -> None:
        pass


class SmtpTransport:
    """One SMTP session, opened on the first message and reused for the rest of the run."""

    def __init__(self, mail: MailSettings) -> None:
        self._mail = mail
        self._smtp: smtplib.SMTP | None = None

    def send(self, message: OutboxMessage, *, now: datetime) -> None:
        smtp = self._connection()
        email = build_email(message, mail=self._mail, now=now)
        try:
            smtp.send_message(
                email, from_addr=self._mail.envelope_sender, to_addrs=[message.to_address]
            )
        except smtplib.SMTPRecipientsRefused:
            raise  # smtplib has reset the transaction; the session is still good
        except BaseException:
            self.close()  # the session's state is unknown: start the next message afresh
            raise

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is None:
            try:
                self._smtp = self._connect()
            except (OSError, smtplib.SMTPException) as exc:
                raise ConnectionFailed(exc) from exc
        return self._smtp

    def _connect(self) -> smtplib.SMTP:
        mail = self._mail
        context = ssl.create_default_context(cafile=str(mail.ca_file) if mail.ca_file else None)
        smtp: smtplib.SMTP
        if mail.security == "tls":
            smtp = smtplib.SMTP_SSL(
                mail.smtp_host, mail.smtp_port, timeout=mail.timeout_seconds, context=context
            )
        else:
            smtp = smtplib.SMTP(mail.smtp_host, mail.smtp_port, timeout=mail.timeout_seconds)
        try:
            smtp.ehlo()
            if mail.security == "starttls":
                # Raises when the server does not offer STARTTLS: never fall back to clear text.
                smtp.starttls(context=context)
                smtp.ehlo()
            if mail.username:
                password = mail.password.get_secret_value() if mail.password else ""
                smtp.login(mail.username, password)
        except BaseException:
            smtp.close()
            raise
        return smtp


def make_transport(mail: MailSettings) -> Transport:
    """The transport ``mail.backend`` names."""
    return SmtpTransport(mail) if mail.backend == "smtp" else LogTransport()


def describe_error(exc: BaseException) -> str:
    """Error class and SMTP reply code: server texts can quote addresses, so never those."""
    if isinstance(exc, ConnectionFailed):
        exc = exc.cause
    name = type(exc).__name__
    code: int | None = getattr(exc, "smtp_code", None)
    if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
        code = min(reply[0] for reply in exc.recipients.values())
    return f"{name} {code}" if code else name
