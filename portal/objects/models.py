"""Per-case wrapped data keys and the rows that vouch for every stored object."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column, LargeBinary
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
