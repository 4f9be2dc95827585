"""The mail outbox: one row per notification, written in the same transaction as its cause."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from portal.db import StrEnumColumn, UTCDateTime, new_id, utcnow


class NotificationKind(StrEnum):
    """Why a message is sent; each kind has one template and one kind of recipient."""

    case_submitted = "case_submitted"
    """To the patient: the receipt for a submitted case (what happens next, by when)."""
    case_assigned = "case_assigned"
    """To the specialist: a case awaits acceptance."""
    due_soon = "due_soon"
    """To the assigned specialist: the deadline is near."""
    info_provided = "info_provided"
    """To the specialist: the patient answered a question."""
    follow_up_asked = "follow_up_asked"
    """To the specialist: the patient asked a follow-up question."""
    info_requested = "info_requested"
    """To the patient: the specialist asked a question."""
    opinion_delivered = "opinion_delivered"
    """To the patient: the signed opinion can be read."""
    case_overdue = "case_overdue"
    """To coordinators: the deadline passed without an opinion."""
    acceptance_timed_out = "acceptance_timed_out"
    """To coordinators: the assigned specialist neither accepted nor declined in time."""
    triage_needed = "triage_needed"
    """To coordinators: no specialist could be matched; the case waits in triage."""
    registration_attempt = "registration_attempt"
    """To an account's owner: someone tried to register their address again (about no case)."""
    break_glass = "break_glass"
    """To the patient: an administrator opened the case's content (break-glass)."""
    password_reset = "password_reset"  # noqa: S105 - a kind of mail, not a secret
    """To an account's owner: a link to choose a new password (sealed until delivered)."""
    password_changed = "password_changed"  # noqa: S105 - a kind of mail
    """To an account's owner: the password was changed (by a reset)."""
    treatment_requested = "treatment_requested"
    """To coordinators: the patient asked for a treatment plan after their opinion."""
    treatment_answered = "treatment_answered"
    """To the patient: a coordinator answered their treatment-plan request."""


class OutboxStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"
    """Gave up after ``max_attempts``; kept for inspection until purged."""


class OutboxMessage(SQLModel, table=True):
    """A rendered notification waiting for (or done with) delivery.

    Holds an address and a link, never medical content. While a worker sends it the row stays
    ``pending`` with ``claimed_by``/``claimed_until`` set: a lease another worker may take over
    only once it has run out (a crashed worker's messages are not lost).
    """

    __tablename__ = "outbox_messages"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    kind: NotificationKind = Field(
        sa_column=Column(StrEnumColumn(NotificationKind, 32), nullable=False)
    )
    recipient_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    to_address: str = Field(max_length=254)
    subject: str = Field(max_length=200)
    body_text: str = Field(sa_type=Text)
    """The message as sent, or, when ``body_sealed`` is set, with its secret link left out."""
    body_sealed: str | None = Field(default=None, sa_type=Text)
    """A body carrying a secret (a reset link), sealed under the portal secret; opened only to
    send it and dropped once the message is sent or given up (docs/notifications.md)."""
    case_id: uuid.UUID | None = Field(default=None, foreign_key="cases.id", index=True)
    status: OutboxStatus = Field(
        default=OutboxStatus.pending,
        sa_column=Column(StrEnumColumn(OutboxStatus, 16), nullable=False, index=True),
    )
    attempts: int = 0
    """Delivery attempts started (counted when claimed)."""
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    claimed_by: str | None = Field(default=None, max_length=32)
    """Random token of the worker holding the lease."""
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=200)
    """Error class and SMTP reply code only: server replies can quote addresses."""
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
