"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from portal.errors import InvalidInput
from portal.i18n import N_, _, ngettext
from portal.settings import Settings


class PasswordTooWeak(InvalidInput):
    default_message = N_("Choose a stronger password.")


@cache
def _common_passwords() -> frozenset[str]:
    # zxcvbn ships the 30,000 most common passwords from public breach corpora.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(word.lower() for word in FREQUENCY_LISTS["passwords"])


def hasher(settings: Settings) -> PasswordHasher:
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
        type=Type.ID,
    )


def check_policy(password: str, *, settings: Settings, email: str, full_name: str) -> None:
    """Raise ``PasswordTooWeak`` with a reason a person can act on."""
    minimum = settings.password_min_length
    if len(password) < minimum:
        raise PasswordTooWeak(
            ngettext(
                "The password must be at least %(num)s character long.",
                "The password must be at least %(num)s characters long.",
                minimum,
            )
        )
    lowered = password.lower()
    if lowered in _common_passwords() or lowered.rstrip("0123456789!.?") in _common_passwords():
        raise PasswordTooWeak(
            _("This password is too common; choose one that is not on leak lists.")
        )
    if len(set(password)) < 4:
        raise PasswordTooWeak(
            _("The password repeats too few characters; choose a less guessable one.")
        )
    personal = {email.lower(), email.split("@")[0].lower(), full_name.lower().replace(" ", "")}
    if lowered.replace(" ", "") in personal:
        raise PasswordTooWeak(_("The password must not be your e-mail address or name."))


def hash_password(password: str, *, settings: Settings) -> str:
    return hasher(settings).hash(password)


def verify_password(password_hash: str, password: str, *, settings: Settings) -> bool:
    try:
        return hasher(settings).verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str, *, settings: Settings) -> bool:
    return hasher(settings).check_needs_rehash(password_hash)


@cache
def _dummy_hash(time_cost: int, memory_kib: int, parallelism: int) -> str:
    return PasswordHasher(time_cost, memory_kib, parallelism=parallelism).hash("not-a-password")


def burn_verify_time(password: str, *, settings: Settings) -> None:
    """Spend the same time as a real verification, so unknown e-mails are not told apart."""
    dummy = _dummy_hash(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )
    verify_password(dummy, password, settings=settings)


def burn_hash_time(password: str, *, settings: Settings) -> None:
    """Spend the time of hashing a new password without keeping the hash (registration)."""
    hash_password(password, settings=settings)
