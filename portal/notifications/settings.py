"""Typed configuration of outgoing mail (environment prefix ``PORTAL_MAIL_``)."""

from __future__ import annotations

from email.utils import parseaddr
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class MailSettings(BaseSettings):
    """How queued notifications leave the portal, and how hard delivery keeps trying."""

    model_config = SettingsConfigDict(env_prefix="PORTAL_MAIL_", extra="ignore")

    backend: Literal["log", "smtp"] = "log"
    """``log`` (development): messages stay in the outbox and a log line records each one."""
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    """``starttls`` (submission, port 587), ``tls`` (implicit TLS, port 465), ``none``."""
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    """Extra CA certificates to trust (an internal relay with a private CA)."""
    from_address: str = "Second Opinion Portal <no-reply@localhost>"
    timeout_seconds: float = Field(default=20.0, gt=0)
    """Per SMTP operation (connect, each command)."""

    max_attempts: int = Field(default=8, ge=1)
    backoff_seconds: float = Field(default=120.0, ge=0)
    """Delay after the first failed attempt; doubles after each further one."""
    backoff_max_seconds: float = Field(default=3600.0, ge=0)
    batch_size: int = Field(default=20, ge=1, le=1000)
    """Messages claimed (and sent over one SMTP connection) at a time."""
    lease_seconds: float = Field(default=600.0, gt=0)
    """How long claimed messages are reserved for their worker before another may take them over.

    A worker starts no new message in the last ``8 x timeout_seconds`` of its lease, so one
    conversation never outlives the claim (see docs/notifications.md)."""
    retention_days: int = Field(default=30, ge=1)
    """Sent and failed messages (addresses, links) are purged after this many days."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.backend == "smtp" and not self.smtp_host:
            raise ValueError("PORTAL_MAIL_SMTP_HOST is required with the smtp backend")
        if self.username and self.security == "none":
            raise ValueError("refusing to send SMTP credentials without TLS (security=none)")
        if self.lease_seconds < 10 * self.timeout_seconds:
            raise ValueError("PORTAL_MAIL_LEASE_SECONDS must be at least 10 x the SMTP timeout")
        if "@" not in parseaddr(self.from_address)[1]:
            raise ValueError("PORTAL_MAIL_FROM_ADDRESS must contain an e-mail address")
        return self

    @property
    def envelope_sender(self) -> str:
        """The bare address of ``from_address`` (SMTP ``MAIL FROM``)."""
        return parseaddr(self.from_address)[1]

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (exponential, capped)."""
        return min(self.backoff_max_seconds, self.backoff_seconds * 2.0 ** max(attempts - 1, 0))
