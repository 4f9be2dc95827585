"""What a FHIR document of a delivered opinion is built from, gathered by ``service`` in one
read of the database; the builders (``bundle``, ``resources``) turn it into resources and
touch neither the database nor storage."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from portal.cases.models import BodyRegion, Priority
from portal.intake.schemas import StudyPublic
from reviewers.pdf import OpinionDocument


@dataclass(frozen=True)
class PatientFacts:
    id: uuid.UUID
    full_name: str
    birth_date: date | None
    language: str


@dataclass(frozen=True)
class SignerFacts:
    id: uuid.UUID
    """The account that signed (from the signed content itself)."""
    full_name: str
    credentials: str
    languages: tuple[str, ...]


@dataclass(frozen=True)
class CaseFacts:
    id: uuid.UUID
    reference: str
    subject: str
    body_region: BodyRegion
    priority: Priority
    language: str
    submitted_at: datetime | None
    question: str
    history: str | None


@dataclass(frozen=True)
class ConsentFacts:
    id: int
    version: str
    accepted_at: datetime
    text_language: str | None
    text: str | None
    """The text of that version in ``text_language`` (None for a version no longer known)."""


@dataclass(frozen=True)
class RecordFacts:
    """A record the patient uploaded (a PDF, a photo), linked rather than embedded."""

    id: uuid.UUID
    filename: str
    kind: str
    size: int
    created_at: datetime


@dataclass(frozen=True)
class OpinionExport:
    """A delivered opinion with its case, people, studies and records, and its PDF."""

    opinion_id: uuid.UUID
    signed_at: datetime
    content_sha256: str
    case: CaseFacts
    patient: PatientFacts
    signer: SignerFacts
    consent: ConsentFacts | None
    studies: tuple[StudyPublic, ...]
    records: tuple[RecordFacts, ...]
    document: OpinionDocument
    """The opinion's sections and addenda, as the PDF prints them."""
    pdf: bytes

    @property
    def updated_at(self) -> datetime:
        """When the document last changed: the signature, or the newest addendum."""
        return max([self.signed_at, *(item.at for item in self.document.addenda)])

    @property
    def amended(self) -> bool:
        return bool(self.document.addenda)
