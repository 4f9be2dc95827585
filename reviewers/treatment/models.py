"""Tables of the treatment guide and of treatment-plan requests, and the shapes of their input
and output.

Text a person reads in the guide is kept per language in one JSON column per row
(``{"en": {"name": ...}, "ru": {...}}``): the interface language chooses which is shown,
falling back to English field by field. English is required, other languages are optional.
Slugs are permanent: a signed opinion names the options it links by slug.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated

from babel import Locale
from babel.numbers import list_currencies
from pydantic import AfterValidator, field_validator, model_validator
from sqlalchemy import JSON, Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from portal.db import StrEnumColumn, UTCDateTime, new_id, utcnow
from portal.i18n import gettext
from portal.inputs import LanguageCode, MultiLineText, SingleLineText

SLUG_PATTERN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_PRICE = 10_000_000
TRAVEL_HORIZON = timedelta(days=730)
"""How far ahead travel may be planned; a later date is almost always a typing slip."""

LanguageTexts = dict[str, dict[str, str]]


def _slug(value: str) -> str:
    value = value.strip().lower()
    if not 2 <= len(value) <= 64 or not SLUG_PATTERN.fullmatch(value) or value == "new":
        raise ValueError(
            "use 2 to 64 lowercase Latin letters, digits and single hyphens, "
            "such as spinal-hemangioma"
        )
    return value


Slug = Annotated[str, AfterValidator(_slug)]
"""A permanent identifier in addresses and signed opinions: ``spinal-hemangioma``."""


def _currency(value: str) -> str:
    code = value.strip().upper()
    if code not in list_currencies():
        raise ValueError("use a three-letter ISO 4217 currency code such as USD, EUR or RUB")
    return code


CurrencyCode = Annotated[str, AfterValidator(_currency)]


_NOT_COUNTRIES = frozenset({"EU", "EZ", "QO", "UN", "XA", "XB", "ZZ"})
"""Two-letter regions in CLDR that are no country (the EU, the UN, pseudo and unknown)."""


def _country(value: str) -> str:
    code = value.strip().upper()
    if len(code) != 2 or code not in Locale("en").territories or code in _NOT_COUNTRIES:
        raise ValueError("use a two-letter ISO 3166 country code such as RU, DE or IL")
    return code


CountryCode = Annotated[str, AfterValidator(_country)]


# --- tables -------------------------------------------------------------------------------------


class Condition(SQLModel, table=True):
    """A condition of the guide: its name, a plain summary and how it is diagnosed."""

    __tablename__ = "treatment_conditions"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    slug: str = Field(max_length=64, unique=True)
    position: int = 0
    texts: LanguageTexts = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """Per language: ``name``, ``summary``, ``diagnosis``."""
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PriceColumns(SQLModel):
    """An indicative price range, in whole units of ``currency``, and the day it was set."""

    currency: str = Field(default="USD", max_length=3)
    price_min: int | None = None
    price_max: int | None = None
    price_set_on: date | None = None


class TreatmentOption(PriceColumns, table=True):
    """A way of treating a condition, with its indicative cost range across clinics."""

    __tablename__ = "treatment_options"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    slug: str = Field(max_length=64, unique=True)
    condition_id: uuid.UUID = Field(foreign_key="treatment_conditions.id", index=True)
    position: int = 0
    texts: LanguageTexts = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """Per language: ``name``, ``description``."""
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Clinic(SQLModel, table=True):
    """A clinic patients may be referred to; deactivated rather than deleted."""

    __tablename__ = "treatment_clinics"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    slug: str = Field(max_length=64, unique=True)
    texts: LanguageTexts = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """Per language: ``name``, ``city``."""
    country: str = Field(max_length=2)
    languages: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Languages the clinic's staff speak with patients (ISO 639-1)."""
    contact: str = Field(default="", max_length=300)
    active: bool = True
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ClinicOffer(PriceColumns, table=True):
    """A treatment option a clinic offers, at its own indicative price range."""

    __tablename__ = "treatment_clinic_offers"
    __table_args__ = (UniqueConstraint("clinic_id", "option_id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    clinic_id: uuid.UUID = Field(foreign_key="treatment_clinics.id", index=True)
    option_id: uuid.UUID = Field(foreign_key="treatment_options.id", index=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class RequestStatus(StrEnum):
    requested = "requested"
    in_progress = "in_progress"
    answered = "answered"
    closed = "closed"
    cancelled = "cancelled"


OPEN_STATUSES = frozenset({RequestStatus.requested, RequestStatus.in_progress})


class TreatmentRequest(SQLModel, table=True):
    """A patient's request for a treatment plan after their opinion, and its answer."""

    __tablename__ = "treatment_requests"
    __table_args__ = (
        Index("ix_treatment_requests_created_id", "created_at", "id"),
        Index("ix_treatment_requests_status_created", "status", "created_at", "id"),
        Index("ix_treatment_requests_case_created", "case_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id")
    patient_id: uuid.UUID = Field(foreign_key="users.id")
    clinic_id: uuid.UUID | None = Field(default=None, foreign_key="treatment_clinics.id")
    """The clinic the patient chose; empty when they asked us to help them choose."""
    options: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Slugs of the opinion's linked options when the request was made."""
    travel_from: date
    travel_to: date
    notes_sealed: bytes | None = Field(default=None, sa_type=LargeBinary)
    """The patient's notes, sealed with the case's text key."""
    status: RequestStatus = Field(
        default=RequestStatus.requested,
        sa_column=Column(StrEnumColumn(RequestStatus, 16), nullable=False),
    )
    answer_sealed: bytes | None = Field(default=None, sa_type=LargeBinary)
    """The coordinator's answer, sealed with the case's text key."""
    answered_by: uuid.UUID | None = Field(default=None, foreign_key="users.id")
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# --- input --------------------------------------------------------------------------------------


class ConditionText(SQLModel):
    name: SingleLineText = Field(min_length=1, max_length=200)
    summary: MultiLineText = Field(default="", max_length=4000)
    diagnosis: MultiLineText = Field(default="", max_length=8000)


class OptionText(SQLModel):
    name: SingleLineText = Field(min_length=1, max_length=200)
    description: MultiLineText = Field(default="", max_length=8000)


class ClinicText(SQLModel):
    name: SingleLineText = Field(min_length=1, max_length=200)
    city: SingleLineText = Field(default="", max_length=100)


def _english_required(texts: dict[str, object]) -> None:
    if "en" not in texts:
        raise ValueError("the English text is required (it is shown where no translation is)")


class PriceRange(SQLModel):
    """An indicative range: either end may be open (``from $60``, ``up to $3,800``)."""

    price_min: int | None = Field(default=None, ge=0, le=MAX_PRICE)
    price_max: int | None = Field(default=None, ge=0, le=MAX_PRICE)
    currency: CurrencyCode = "USD"
    price_set_on: date | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PriceRange:
        low, high = self.price_min, self.price_max
        if low is not None and high is not None and low > high:
            raise ValueError("the lowest price must not be above the highest")
        priced = low is not None or high is not None
        if priced and self.price_set_on is None:
            raise ValueError("say on which day the price was set")
        if self.price_set_on is not None and self.price_set_on > utcnow().date():
            raise ValueError("the day the price was set cannot be in the future")
        return self


class ConditionSave(SQLModel):
    slug: Slug
    position: int = Field(default=0, ge=0, le=10000)
    texts: dict[LanguageCode, ConditionText]

    @field_validator("texts")
    @classmethod
    def _english(cls, value: dict[str, ConditionText]) -> dict[str, ConditionText]:
        _english_required(dict(value))
        return value


class OptionSave(PriceRange):
    slug: Slug
    condition: Slug
    position: int = Field(default=0, ge=0, le=10000)
    texts: dict[LanguageCode, OptionText]

    @field_validator("texts")
    @classmethod
    def _english(cls, value: dict[str, OptionText]) -> dict[str, OptionText]:
        _english_required(dict(value))
        return value


class ClinicSave(SQLModel):
    slug: Slug
    texts: dict[LanguageCode, ClinicText]
    country: CountryCode
    languages: list[LanguageCode] = Field(default_factory=list, max_length=20)
    contact: SingleLineText = Field(default="", max_length=300)
    active: bool = True

    @field_validator("texts")
    @classmethod
    def _english(cls, value: dict[str, ClinicText]) -> dict[str, ClinicText]:
        _english_required(dict(value))
        return value


class OfferSave(PriceRange):
    option: Slug


class GuideSeed(SQLModel):
    """The whole of ``seed.yaml``: conditions with their options, and clinics with offers."""

    conditions: list[ConditionSave] = Field(default_factory=list)
    options: list[OptionSave] = Field(default_factory=list)
    clinics: list[ClinicSave] = Field(default_factory=list)
    offers: dict[Slug, list[OfferSave]] = Field(default_factory=dict)
    """Per clinic slug."""


class TreatmentRequestCreate(SQLModel):
    clinic: Slug | None = None
    """The clinic's slug; empty (null) for "help me choose"."""
    travel_from: date
    travel_to: date
    notes: MultiLineText = Field(default="", max_length=4000)

    @model_validator(mode="after")
    def _dates(self) -> TreatmentRequestCreate:
        today = utcnow().date()
        if self.travel_from < today:
            raise ValueError(gettext("the first day of travel cannot be in the past"))
        if self.travel_to < self.travel_from:
            raise ValueError(gettext("the last day of travel must be on or after the first"))
        if self.travel_to > today + TRAVEL_HORIZON:
            raise ValueError(gettext("travel can be planned up to two years ahead"))
        return self


class RequestStatusChange(SQLModel):
    status: RequestStatus
    answer: MultiLineText | None = Field(default=None, max_length=8000)
    """Required to move a request to ``answered``; ignored otherwise."""


# --- output -------------------------------------------------------------------------------------


class PricePublic(SQLModel):
    currency: str
    min: int | None
    max: int | None
    set_on: date | None
    text: str
    """The range as the interface language writes it (``$800 – $1,800``)."""


class OfferPublic(SQLModel):
    clinic: str
    clinic_name: str
    city: str
    country: str
    price: PricePublic


class OptionPublic(SQLModel):
    slug: str
    condition: str
    name: str
    description: str
    price: PricePublic
    offers: list[OfferPublic]


class ConditionPublic(SQLModel):
    slug: str
    name: str
    summary: str
    diagnosis: str
    options: list[OptionPublic]


class ClinicPublic(SQLModel):
    slug: str
    name: str
    city: str
    country: str
    country_name: str
    languages: list[str]
    contact: str
    active: bool


class TreatmentRequestPublic(SQLModel):
    id: uuid.UUID
    case_id: uuid.UUID
    case_reference: str
    status: RequestStatus
    clinic: ClinicPublic | None
    """None: the patient asked for help choosing a clinic."""
    options: list[str]
    travel_from: date
    travel_to: date
    notes: str
    answer: str | None
    answered_at: datetime | None
    created_at: datetime
    updated_at: datetime
