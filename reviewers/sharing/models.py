"""Share links: a patient shows a delivered opinion to their own doctor, without an account.

Only hashes of the link's secret and of its access code are kept; both are shown once, when
the link is made. See docs/sharing.md.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from portal.db import UTCDateTime, new_id, utcnow
from portal.inputs import SingleLineText

DEFAULT_DAYS = 14
MAX_DAYS = 90


class ShareLink(SQLModel, table=True):
    """A link to one case's delivered opinion (and, if chosen, its images), for a while."""

    __tablename__ = "share_links"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id", index=True)
    created_by: uuid.UUID = Field(foreign_key="users.id")
    """The patient who made it: the link acts for them, never for more than they may do."""
    token_hash: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    """SHA-256 (hex) of the secret in the link's URL."""
    code_hash: str | None = Field(default=None, max_length=64)
    """HMAC-SHA-256 under the portal's secret of the access code, if one was asked for."""
    images: bool = False
    note: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    uses: int = 0
    code_failures: int = 0
    """Wrong access codes since ``code_failures_since`` (the throttle's fixed window)."""
    code_failures_since: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ShareLinkCreate(SQLModel):
    days: int = Field(default=DEFAULT_DAYS, ge=1, le=MAX_DAYS)
    """How long the link works, in days (1 to 90)."""
    images: bool = False
    """Whether the recipient may also look at the case's images in the built-in viewer."""
    access_code: bool = False
    """Whether opening the link also needs a code, shown once, to be sent separately."""
    note: SingleLineText | None = Field(default=None, max_length=100)
    """Whom the link is for ("Dr Ivanova, my oncologist"): shown in the patient's list only."""


class ShareLinkIssued(SQLModel):
    """The new link, with its URL and access code: shown this once, never stored."""

    id: uuid.UUID
    url: str
    expires_at: datetime
    images: bool
    access_code: str | None = None


class ShareLinkPublic(SQLModel):
    """A link as the patient's list shows it: no secret, no code."""

    id: uuid.UUID
    note: str | None
    images: bool
    access_code: bool
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    uses: int
    active: bool
