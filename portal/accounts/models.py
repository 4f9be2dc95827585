"""Accounts, their sessions and failed sign-in attempts."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from pydantic import EmailStr, field_validator
from sqlalchemy import Column, Index
from sqlmodel import Field, SQLModel

from portal.db import StrEnumColumn, UTCDateTime, new_id, utcnow
from portal.i18n import N_
from portal.inputs import LanguageCode, SingleLineText


class Role(StrEnum):
    patient = "patient"
    specialist = "specialist"
    coordinator = "coordinator"
    admin = "admin"


STAFF_ROLES = frozenset({Role.specialist, Role.coordinator, Role.admin})

LANGUAGE_PATTERN = r"^[a-z]{2}$"
"""ISO 639-1 code, lower case (``en``, ``ru``, ``de``…); the supported ones: ``portal.inputs``."""


EARLIEST_BIRTH_DATE = date(1900, 1, 1)


def plausible_birth_date(value: date | None) -> date | None:
    """A birth date between 1900 and today, else ``ValueError`` with a reason."""
    if value is not None and not EARLIEST_BIRTH_DATE <= value <= date.today():
        raise ValueError("must be a date between 1900 and today")
    return value


class UserBase(SQLModel):
    email: str = Field(max_length=254, sa_column_kwargs={"unique": True}, index=True)
    full_name: str = Field(min_length=1, max_length=200)
    language: str = Field(default="en", max_length=2)
    date_of_birth: date | None = None
    """Optional; compared with the birth date in uploaded studies (identity check)."""
    phone: str | None = Field(default=None, max_length=16)
    """Optional, E.164 (``+4915123456789``); normalised by ``portal.accounts.settings``."""


class User(UserBase, table=True):
    """An account. Holds secrets (password hash, sealed TOTP secret): never returned as is."""

    __tablename__ = "users"
    __table_args__ = (Index("ix_users_role_name", "role", "full_name", "id"),)  # staff by name

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    role: Role = Field(sa_column=Column(StrEnumColumn(Role, 16), nullable=False, index=True))
    password_hash: str = Field(max_length=255)
    totp_secret_sealed: str | None = Field(default=None, max_length=255)
    totp_enabled: bool = False
    totp_last_step: int | None = None
    """Last accepted TOTP time step: a code is never accepted twice."""
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class UserCreate(SQLModel):
    email: EmailStr
    password: str = Field(max_length=1024)
    full_name: SingleLineText = Field(min_length=1, max_length=200)
    language: LanguageCode = Field(default="en", max_length=8)
    date_of_birth: date | None = None

    @field_validator("date_of_birth")
    @classmethod
    def _plausible_birth_date(cls, value: date | None) -> date | None:
        return plausible_birth_date(value)

    @field_validator("full_name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("full name must not be empty")
        return value


class StaffCreate(UserCreate):
    role: Role


class UserPublic(SQLModel):
    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    language: str
    date_of_birth: date | None = None
    phone: str | None = None
    totp_enabled: bool


class AccountUpdate(SQLModel):
    """``PATCH /api/me``: only the fields sent change; ``null`` clears birth date or phone."""

    language: LanguageCode | None = Field(default=None, max_length=8)
    date_of_birth: date | None = None
    phone: SingleLineText | None = Field(default=None, max_length=40)

    @field_validator("date_of_birth")
    @classmethod
    def _plausible_birth_date(cls, value: date | None) -> date | None:
        return plausible_birth_date(value)


class AuthSession(SQLModel, table=True):
    """A signed-in session. Only the SHA-256 of its token is stored."""

    __tablename__ = "auth_sessions"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    token_hash: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    enrollment_only: bool = False
    """A staff member without TOTP yet: this session may only enrol a second factor."""


class LoginFailure(SQLModel, table=True):
    """One failed sign-in (or re-entered password) for an e-mail address from a client.

    Kept for the throttling window. The client's address is stored only as a keyed hash.
    """

    __tablename__ = "login_failures"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, index=True)
    client_hash: str | None = Field(default=None, max_length=64, index=True)
    """HMAC of the client's IP address under a key derived from ``PORTAL_SECRET_KEY``."""
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class LoginRequest(SQLModel):
    email: SingleLineText = Field(max_length=254)
    password: str = Field(max_length=1024)
    otp: SingleLineText | None = Field(default=None, max_length=12)


REGISTRATION_RECEIVED = N_(
    "Registration received. Sign in with your e-mail address and password. If this address "
    "already had an account, nothing was changed and its owner has been sent an e-mail."
)


class RegistrationReceived(SQLModel):
    """The answer to every accepted registration, new address or not."""

    detail: str = REGISTRATION_RECEIVED


class LoginResponse(SQLModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    role: Role
    csrf_token: str
    expires_at: datetime
    totp_enrollment_required: bool = False


class TotpEnrollment(SQLModel):
    secret: str
    otpauth_uri: str
    qr_svg: str


class PasswordRequest(SQLModel):
    """The current password, asked again before the account's sign-in is changed."""

    password: str = Field(max_length=1024)


class TotpConfirmRequest(SQLModel):
    otp: SingleLineText = Field(max_length=12)
    password: str = Field(max_length=1024)


class TotpDisableRequest(SQLModel):
    password: str = Field(max_length=1024)
    otp: SingleLineText = Field(max_length=12)


class PasswordResetToken(SQLModel, table=True):
    """A password-reset link sent by e-mail. Only the SHA-256 of its token is stored.

    Single use (``used_at``), short-lived (``expires_at``); issuing a new one or changing the
    password ends the account's others (docs/accounts.md, "Password reset").
    """

    __tablename__ = "password_reset_tokens"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    token_hash: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PasswordResetRequest(SQLModel, table=True):
    """One asked-for reset link, for throttling: the address and client as keyed hashes only
    (anyone can type any address, so addresses without an account are not kept readable)."""

    __tablename__ = "password_reset_requests"

    id: int | None = Field(default=None, primary_key=True)
    email_hash: str = Field(max_length=64, index=True)
    client_hash: str | None = Field(default=None, max_length=64, index=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class PendingSignIn(SQLModel, table=True):
    """A correct password still waiting for its one-time code (staff two-step sign-in).

    Held server-side for a few minutes, named by a random token in a cookie (only its hash
    is stored), and consumed by the code that completes the sign-in.
    """

    __tablename__ = "pending_sign_ins"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    token_hash: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    failures: int = 0
    consumed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PasswordResetAsk(SQLModel):
    """``POST /api/auth/password-reset``."""

    email: SingleLineText = Field(max_length=254)


class PasswordResetConfirm(SQLModel):
    """``POST /api/auth/password-reset/confirm``."""

    token: SingleLineText = Field(max_length=200)
    password: str = Field(max_length=1024)


class PasswordResetReceived(SQLModel):
    """The answer to every reset request, whether or not the address has an account."""

    detail: str
