"""A break-glass grant: one admin, one case, a reason, a deadline."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import field_validator
from sqlmodel import Field, SQLModel

from portal.db import UTCDateTime, new_id, utcnow

MIN_REASON_LENGTH = 20
"""Long enough that "checking" or "test" is refused: the reason must say why."""


class BreakGlassGrant(SQLModel, table=True):
    """While ``expires_at`` is ahead, the admin ``user_id`` reads the content of ``case_id``."""

    __tablename__ = "break_glass_grants"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id", index=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    reason: str = Field(max_length=2000)
    granted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class BreakGlassRequest(SQLModel):
    reason: str = Field(min_length=MIN_REASON_LENGTH, max_length=2000)
    """Why the content must be opened (a support ticket, a legal request…); audited."""

    @field_validator("reason")
    @classmethod
    def _says_something(cls, value: str) -> str:
        if len(value.strip()) < MIN_REASON_LENGTH:
            raise ValueError(f"must say why in at least {MIN_REASON_LENGTH} characters")
        return value.strip()


class BreakGlassPublic(SQLModel):
    id: uuid.UUID
    case_id: uuid.UUID
    admin_id: uuid.UUID
    reason: str
    granted_at: datetime
    expires_at: datetime
    active: bool
