"""Cases: a patient's request for a second opinion, and its timeline."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import field_validator
from sqlalchemy import Column, Index, LargeBinary
from sqlmodel import Field, SQLModel

from portal.db import StrEnumColumn, UTCDateTime, new_id, utcnow
from portal.inputs import LanguageCode, MultiLineText, SingleLineText


class CaseStatus(StrEnum):
    draft = "draft"
    submitted = "submitted"
    triage = "triage"
    assigned = "assigned"
    in_review = "in_review"
    info_requested = "info_requested"
    opinion_delivered = "opinion_delivered"
    closed = "closed"
    cancelled = "cancelled"


class Priority(StrEnum):
    standard = "standard"
    urgent = "urgent"


class BodyRegion(StrEnum):
    """Where the question is; specialists declare the regions they read."""

    head = "head"
    neck = "neck"
    spine = "spine"
    chest = "chest"
    heart = "heart"
    breast = "breast"
    abdomen = "abdomen"
    pelvis = "pelvis"
    upper_limb = "upper_limb"
    lower_limb = "lower_limb"
    whole_body = "whole_body"
    other = "other"


class CaseBase(SQLModel):
    subject: str = Field(min_length=3, max_length=200)
    body_region: BodyRegion = Field(sa_column=Column(StrEnumColumn(BodyRegion, 16), nullable=False))
    language: str = Field(default="en", max_length=2)
    priority: Priority = Field(
        default=Priority.standard, sa_column=Column(StrEnumColumn(Priority, 16), nullable=False)
    )


class Case(CaseBase, table=True):
    __tablename__ = "cases"
    __table_args__ = (
        # Keyset pages of the case lists, newest first (migration 0011, docs/scale.md).
        Index("ix_cases_created_at_id", "created_at", "id"),
        Index("ix_cases_patient_created", "patient_id", "created_at", "id"),
        Index("ix_cases_specialist_created", "assigned_specialist_id", "created_at", "id"),
        Index("ix_cases_status_created", "status", "created_at", "id"),
        # Specialists' load and the deadline counts, read from the index alone.
        Index("ix_cases_status_load", "status", "assigned_specialist_id", "due_at", "paused_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    clinical_question_sealed: bytes | None = Field(default=None, sa_type=LargeBinary)
    """The patient's question, sealed with the case's text key (``portal.objects.texts``)."""
    history_sealed: bytes | None = Field(default=None, sa_type=LargeBinary)
    reference: str = Field(max_length=16, sa_column_kwargs={"unique": True})
    """Short code people can read out on the phone (``SO-7KQ2MX``); carries no patient data."""
    patient_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    status: CaseStatus = Field(
        default=CaseStatus.draft,
        sa_column=Column(StrEnumColumn(CaseStatus, 24), nullable=False, index=True),
    )
    assigned_specialist_id: uuid.UUID | None = Field(
        default=None, foreign_key="users.id", index=True
    )
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    paused_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    """Set while the case waits for the patient: the deadline clock stands still."""
    deadline_notice: str | None = Field(default=None, max_length=16)
    """The last deadline warning sent (``due_soon``, ``overdue``), so each goes out once."""
    needs_translation: bool = False
    """Nobody available speaks the case's language: the opinion goes through translation."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CaseCreate(SQLModel):
    subject: SingleLineText = Field(min_length=3, max_length=200)
    body_region: BodyRegion
    clinical_question: MultiLineText = Field(min_length=10, max_length=8000)
    history: MultiLineText | None = Field(default=None, max_length=20000)
    language: LanguageCode | None = Field(default=None, max_length=8)
    priority: Priority = Priority.standard

    @field_validator("subject", "clinical_question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class CaseEvent(SQLModel, table=True):
    """One step on the case's timeline, as the patient and staff see it."""

    __tablename__ = "case_events"

    id: int | None = Field(default=None, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id", index=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    actor_id: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    actor_role: str | None = Field(default=None, max_length=16)
    from_status: str | None = Field(default=None, max_length=24)
    to_status: str = Field(max_length=24)
    note_sealed: bytes | None = Field(default=None, sa_type=LargeBinary)
    """Why the step happened, sealed with the case's text key."""


class PersonRef(SQLModel):
    id: uuid.UUID
    full_name: str


class CaseEventPublic(SQLModel):
    at: datetime
    actor_role: str | None
    from_status: str | None
    to_status: str
    note: str | None


class CaseSummary(SQLModel):
    id: uuid.UUID
    reference: str
    subject: str
    body_region: BodyRegion
    language: str
    priority: Priority
    status: CaseStatus
    assigned_specialist: PersonRef | None
    due_at: datetime | None
    deadline_state: str | None
    """``on_track``, ``due_soon``, ``overdue`` or ``paused`` while a deadline runs."""
    needs_translation: bool
    created_at: datetime
    updated_at: datetime


class CasePublic(CaseSummary):
    clinical_question: str | None
    """Null for a caller who may not read the case's content (a draft, to staff)."""
    history: str | None
    patient: PersonRef
    timeline: list[CaseEventPublic]


class CaseConsent(SQLModel, table=True):
    """A patient's acceptance of one version of the consent text for one case."""

    __tablename__ = "case_consents"

    id: int | None = Field(default=None, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id", index=True)
    user_id: uuid.UUID = Field(foreign_key="users.id")
    version: str = Field(max_length=32)
    accepted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    client_ip: str | None = Field(default=None, max_length=64)


class CancelRequest(SQLModel):
    reason: MultiLineText | None = Field(default=None, max_length=2000)


class ConsentRequest(SQLModel):
    accepted: bool
    version: SingleLineText = Field(max_length=32)


class ConsentPublic(SQLModel):
    version: str
    accepted_at: datetime


class ConsentText(SQLModel):
    version: str
    text: str
    language: str = "en"
    """The language ``text`` is in: the caller's (account, then ``Accept-Language``) if the
    version has it, else English."""
