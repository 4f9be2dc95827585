"""Case-scoped, read-only DICOMweb tokens for desktop viewers and scripts."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from portal.db import UTCDateTime, new_id, utcnow
from portal.inputs import SingleLineText


class DicomwebToken(SQLModel, table=True):
    """A bearer token that reads one case's DICOMweb for the account that made it.

    Only the SHA-256 of the token is kept; the token itself is shown once, when made.
    """

    __tablename__ = "dicomweb_tokens"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id", index=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    token_hash: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    label: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class TokenCreate(SQLModel):
    label: SingleLineText | None = Field(default=None, max_length=100)
    """What the token is for ("Horos on my laptop"), shown in the list."""


class TokenIssued(SQLModel):
    """The token, shown this once, with where to use it."""

    id: uuid.UUID
    token: str
    expires_at: datetime
    dicomweb_url: str


class TokenPublic(SQLModel):
    id: uuid.UUID
    label: str | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    mine: bool
