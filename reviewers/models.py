"""Specialists, offers of cases to them, questions both ways, and opinions with addenda."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import field_validator, model_validator
from sqlalchemy import JSON, Column, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from portal.accounts.models import LANGUAGE_PATTERN
from portal.cases.models import BodyRegion
from portal.db import StrEnumColumn, UTCDateTime, new_id, utcnow
from portal.i18n import N_
from portal.inputs import MultiLineText, SingleLineText
from reviewers.vocabulary import MODALITIES, Specialty


class SpecialistProfile(SQLModel, table=True):
    """What a specialist reads and how much work they take; one row per specialist account."""

    __tablename__ = "specialist_profiles"

    user_id: uuid.UUID = Field(foreign_key="users.id", primary_key=True)
    specialties: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    body_regions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    modalities: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    languages: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    credentials: str = Field(default="", max_length=300)
    """Licence and credentials line printed under the signature."""
    max_active_cases: int = 8
    available: bool = True
    public_listing: bool = False
    """The specialist agreed to be named on the public page (name, credentials, what they
    read, languages; never contact details or workload)."""
    absences: list[dict[str, str]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    """``[{"start": "2026-12-20", "end": "2027-01-03"}]``, inclusive dates."""
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Absence(SQLModel):
    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> Absence:
        if self.end < self.start:
            raise ValueError("an absence must end on or after its first day")
        return self


class SpecialistProfileUpdate(SQLModel):
    """A coordinator's or admin's edit of a profile; omitted fields stay as they are."""

    specialties: list[Specialty] | None = Field(default=None, max_length=20)
    body_regions: list[BodyRegion] | None = Field(default=None, max_length=20)
    modalities: list[SingleLineText] | None = Field(default=None, max_length=20)
    languages: list[SingleLineText] | None = Field(default=None, max_length=20)
    credentials: SingleLineText | None = Field(default=None, max_length=300)
    max_active_cases: int | None = Field(default=None, ge=0, le=200)
    available: bool | None = None
    public_listing: bool | None = None
    absences: list[Absence] | None = Field(default=None, max_length=50)

    @field_validator("modalities")
    @classmethod
    def _known_modalities(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        upper = [code.strip().upper() for code in value]
        unknown = sorted(set(upper) - MODALITIES.keys())
        if unknown:
            raise ValueError(
                f"unknown modality {', '.join(unknown)}; use DICOM codes such as MR, CT, CR, DX"
            )
        return sorted(set(upper))

    @field_validator("languages")
    @classmethod
    def _language_codes(cls, value: list[str] | None) -> list[str] | None:
        import re

        if value is None:
            return None
        codes = sorted({code.strip().lower() for code in value})
        for code in codes:
            if not re.fullmatch(LANGUAGE_PATTERN, code):
                raise ValueError(f"{code!r} is not a two-letter language code such as en or ru")
        return codes


class SpecialistPublic(SQLModel):
    id: uuid.UUID
    full_name: str
    email: str
    is_active: bool
    specialties: list[str]
    body_regions: list[str]
    modalities: list[str]
    languages: list[str]
    credentials: str
    max_active_cases: int
    available: bool
    public_listing: bool = False
    absences: list[dict[str, str]]
    active_cases: int
    """Cases offered to or being reviewed by this specialist now."""


class ListedSpecialist(SQLModel):
    """A specialist as the public page shows them: what they agreed to show, nothing else."""

    full_name: str
    credentials: str
    specialties: list[str]
    modalities: list[str]
    languages: list[str]


class OfferStatus(StrEnum):
    offered = "offered"
    accepted = "accepted"
    declined = "declined"
    timed_out = "timed_out"
    withdrawn = "withdrawn"
    """A coordinator moved the case elsewhere."""
    completed = "completed"


class CaseAssignment(SQLModel, table=True):
    """One offer of a case to one specialist, and what became of it."""

    __tablename__ = "case_assignments"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id", index=True)
    specialist_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    status: OfferStatus = Field(
        default=OfferStatus.offered,
        sa_column=Column(StrEnumColumn(OfferStatus, 16), nullable=False, index=True),
    )
    offered_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    respond_by: datetime = Field(sa_type=UTCDateTime)
    responded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reason_sealed: bytes | None = Field(default=None, sa_type=LargeBinary)
    """Why the specialist declined, or why a coordinator reassigned (sealed)."""
    assigned_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    """The coordinator who chose this specialist; empty when matching did."""
    score: float | None = None
    explanation: str = Field(default="", max_length=1000)
    needs_translation: bool = False


class AssignmentPublic(SQLModel):
    specialist_id: uuid.UUID
    specialist_name: str
    status: OfferStatus
    offered_at: datetime
    respond_by: datetime
    responded_at: datetime | None
    reason: str | None
    explanation: str
    automatic: bool
    needs_translation: bool


class QuestionKind(StrEnum):
    clarification = "clarification"
    """The specialist asks the patient, before the opinion."""
    follow_up = "follow_up"
    """The patient asks the specialist, after the opinion; answered as an addendum."""


class CaseQuestion(SQLModel, table=True):
    __tablename__ = "case_questions"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id", index=True)
    kind: QuestionKind = Field(sa_column=Column(StrEnumColumn(QuestionKind, 16), nullable=False))
    asked_by: uuid.UUID = Field(foreign_key="users.id")
    asked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    text_sealed: bytes | None = Field(default=None, sa_type=LargeBinary)
    """The question and its answer, sealed with the case's text key."""
    answered_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    answer_sealed: bytes | None = Field(default=None, sa_type=LargeBinary)


class TextBody(SQLModel):
    text: MultiLineText = Field(min_length=1, max_length=8000)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class QuestionPublic(SQLModel):
    id: uuid.UUID
    kind: QuestionKind
    asked_at: datetime
    asked_by_role: str
    text: str
    answered_at: datetime | None
    answer: str | None


class OpinionStatus(StrEnum):
    draft = "draft"
    signed = "signed"


class Opinion(SQLModel, table=True):
    """The specialist's structured opinion: a draft until signed, then frozen for good."""

    __tablename__ = "opinions"
    __table_args__ = (UniqueConstraint("case_id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id")
    author_id: uuid.UUID = Field(foreign_key="users.id")
    status: OpinionStatus = Field(
        default=OpinionStatus.draft,
        sa_column=Column(StrEnumColumn(OpinionStatus, 16), nullable=False),
    )
    content_sealed: bytes | None = Field(default=None, sa_type=LargeBinary)
    """The sections (``OpinionContent`` as JSON), sealed with the case's text key."""
    revision: int = 0
    """Bumped by every save; a draft save may name the revision it edits (lost-update check)."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    signed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    signer_name: str | None = Field(default=None, max_length=200)
    signer_credentials: str | None = Field(default=None, max_length=300)
    canonical_sealed: bytes | None = Field(default=None, sa_type=LargeBinary)
    """The exact signed bytes (canonical JSON, UTF-8) the hash covers, sealed."""
    content_sha256: str | None = Field(default=None, max_length=64)


class OpinionAddendum(SQLModel, table=True):
    """A dated addition to a signed opinion (a correction, or the answer to a follow-up)."""

    __tablename__ = "opinion_addenda"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    opinion_id: uuid.UUID = Field(foreign_key="opinions.id", index=True)
    author_id: uuid.UUID = Field(foreign_key="users.id")
    author_name: str = Field(max_length=200)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    text_sealed: bytes | None = Field(default=None, sa_type=LargeBinary)
    question_id: uuid.UUID | None = Field(default=None, foreign_key="case_questions.id")
    content_sha256: str = Field(max_length=64)


class Urgency(StrEnum):
    routine = "routine"
    soon = "soon"
    urgent = "urgent"
    emergency = "emergency"


class Recommendations(SQLModel):
    treatment_options: MultiLineText = Field(default="", max_length=20000)
    urgency: Urgency | None = None
    further_tests: MultiLineText = Field(default="", max_length=20000)
    guide_options: list[Annotated[SingleLineText, Field(max_length=64)]] = Field(
        default_factory=list, max_length=30
    )
    """Slugs of treatment options from the guide (``reviewers.treatment``) the specialist
    links; stored in the content only when there are some, so an opinion that links none
    keeps the canonical form it had before links existed (docs/treatment.md)."""


class AnswerToQuestion(SQLModel):
    question: MultiLineText = Field(max_length=8000)
    answer: MultiLineText = Field(max_length=20000)


class OpinionContent(SQLModel):
    """The structured sections of an opinion, as saved and as signed."""

    summary: MultiLineText = Field(default="", max_length=20000)
    findings: MultiLineText = Field(default="", max_length=50000)
    """Imaging findings."""
    impression: MultiLineText = Field(default="", max_length=20000)
    """Impression / diagnosis."""
    answers: list[AnswerToQuestion] = Field(default_factory=list, max_length=50)
    """Answers to the patient's own questions."""
    recommendations: Recommendations = Field(default_factory=Recommendations)
    limitations: MultiLineText = Field(default="", max_length=20000)

    @field_validator("recommendations", mode="before")
    @classmethod
    def _plain_recommendations(cls, value: object) -> object:
        return {"treatment_options": value} if isinstance(value, str) else value

    @field_validator("answers", mode="before")
    @classmethod
    def _plain_answers(cls, value: object) -> object:
        if isinstance(value, str):
            return [{"question": "Your questions", "answer": value}] if value.strip() else []
        return value

    def missing_for_signing(self) -> list[str]:
        """The sections that must be written before the opinion can be signed (English names,
        marked for translation where they are shown)."""
        missing = [
            label
            for label, text in (
                (N_("summary"), self.summary),
                (N_("imaging findings"), self.findings),
                (N_("impression"), self.impression),
            )
            if not text.strip()
        ]
        if not any(item.answer.strip() for item in self.answers):
            missing.append(N_("answers to the patient's questions"))
        if self.recommendations.urgency is None:
            missing.append(N_("urgency of the recommendations"))
        return missing


class OpinionDraft(OpinionContent):
    revision: int | None = None
    """The revision this edit started from; a stale one is refused instead of overwriting."""


class SignRequest(SQLModel):
    password: str = Field(max_length=1024)
    otp: str = Field(max_length=16)


class AddendumPublic(SQLModel):
    at: datetime
    author_name: str
    text: str
    content_sha256: str
    answers_question: uuid.UUID | None


class AddendumCreate(SQLModel):
    text: MultiLineText = Field(min_length=1, max_length=20000)


class OpinionPublic(SQLModel):
    case_id: uuid.UUID
    status: OpinionStatus
    revision: int
    content: OpinionContent
    author_id: uuid.UUID
    updated_at: datetime
    signed_at: datetime | None
    signer_name: str | None
    signer_credentials: str | None
    content_sha256: str | None
    addenda: list[AddendumPublic]
