"""Account settings the holder changes: language, date of birth, phone.

The phone number is parsed by ``phonenumbers`` (Google's libphonenumber data) and stored in
E.164; the birth date feeds the identity check against the studies' DICOM birth dates.
"""

from __future__ import annotations

from datetime import date

import phonenumbers
from sqlmodel import Session

from portal.accounts.models import User, plausible_birth_date
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.db import utcnow
from portal.errors import InvalidInput
from portal.i18n import N_

UNSET: object = object()
"""A field left as it is (``None`` clears the birth date or the phone)."""


class PhoneInvalid(InvalidInput):
    default_message = N_(
        "This phone number is not valid. Write it with the country code, for example "
        "+49 151 23456789."
    )


class BirthDateInvalid(InvalidInput):
    default_message = N_("The date of birth must be between 1 January 1900 and today.")


def normalize_phone(raw: str) -> str | None:
    """``raw`` as E.164 (``+4915123456789``); None for an empty value; else ``PhoneInvalid``.

    Without a leading ``+`` (or ``00``) the country cannot be known, so it is refused rather
    than guessed.
    """
    text = raw.strip()
    if not text:
        return None
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise PhoneInvalid() from exc
    if not phonenumbers.is_valid_number(number):
        raise PhoneInvalid()
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def display_phone(e164: str | None) -> str:
    """A stored number in international format for reading (``+49 151 23456789``)."""
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def checked_birth_date(value: date | None) -> date | None:
    try:
        return plausible_birth_date(value)
    except ValueError as exc:
        raise BirthDateInvalid() from exc


def update_account(
    *,
    session: Session,
    ctx: AuditContext,
    user: User,
    language: str | None = None,
    date_of_birth: date | object | None = UNSET,
    phone: str | object | None = UNSET,
) -> User:
    """Change the given settings (all checked before any is written), audit, commit."""
    born = (
        checked_birth_date(date_of_birth if isinstance(date_of_birth, date) else None)
        if date_of_birth is not UNSET
        else user.date_of_birth
    )
    number = (
        (normalize_phone(phone) if isinstance(phone, str) else None)
        if phone is not UNSET
        else user.phone
    )
    changed: list[str] = []
    if language is not None and language != user.language:
        user.language = language
        changed.append("language")
    if born != user.date_of_birth:
        user.date_of_birth = born
        changed.append("date_of_birth")
    if number != user.phone:
        user.phone = number
        changed.append("phone")
    if changed:
        user.updated_at = utcnow()
        session.add(user)
        audit_service.record(
            session=session,
            ctx=ctx,
            action="account.update",
            entity_type="user",
            entity_id=user.id,
            details={"fields": ",".join(changed)},
        )
    session.commit()
    return user
