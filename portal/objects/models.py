"""Per-case wrapped data keys and the rows that vouch for every stored object."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column, LargeBinary, Text
from sqlmodel import Field, SQLModel

from portal.db import UTCDateTime, new_id, utcnow


class CaseKey(SQLModel, table=True):
    """A case's data key, wrapped by the key provider. The plaintext key is never stored.

    Deleting this row is crypto-shredding: every object of the case becomes undecryptable,
    including copies in backups.
    """

    __tablename__ = "case_keys"

    case_id: uuid.UUID = Field(primary_key=True, foreign_key="cases.id")
    wrapped_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    provider: str = Field(max_length=16)
    kek_id: str = Field(max_length=255, index=True)
    """Which key-encryption key wraps it (keyring version or KMS key id): rotation's worklist."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    rewrapped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    text_share_id: uuid.UUID | None = Field(default=None, foreign_key="stored_objects.id")
    """The object holding the key share of the case's sealed text (``portal.objects.texts``)."""


class StoredObject(SQLModel, table=True):
    """One encrypted object in the bucket, as the portal knows it."""

    __tablename__ = "stored_objects"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id", index=True)
    object_key: str = Field(max_length=255, sa_column_kwargs={"unique": True})
    size: int = Field(sa_type=BigInteger)
    """Plaintext bytes (studies reach several GB: 64-bit)."""
    stored_size: int = Field(sa_type=BigInteger)
    """Ciphertext bytes in the bucket."""
    sha256: str = Field(max_length=64)
    """SHA-256 of the plaintext, verified at the end of every full read."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PendingText(SQLModel, table=True):
    """Free text written before columns were sealed, waiting to be sealed (migration 0006).

    The migration moves every clear value here and drops the clear columns; the portal seals
    them at start-up (or ``portal texts seal``) and deletes these rows. Empty once done.
    """

    __tablename__ = "pending_texts"

    id: int | None = Field(default=None, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id", index=True)
    table_name: str = Field(max_length=64)
    column_name: str = Field(max_length=64)
    row_id: str = Field(max_length=64)
    """The target row's primary key as text (a UUID, or the number of a timeline event)."""
    value: str = Field(sa_type=Text)
