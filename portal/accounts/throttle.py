"""Sign-in throttling: growing delays per account and per client address, never a hard lock.

Every failed password (or one-time code) is stored with the e-mail address it was tried on and
a keyed hash of the client's address. The first ``login_free_failures`` failures in the window
cost nothing; after that each failure doubles the wait before the next attempt, up to a cap.
The client's cap is long (a guesser waits), the account's is short (a stranger's failures can
only delay the owner by that much, never lock them out). See docs/accounts.md.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func
from sqlmodel import Session, col, delete, select, update

from portal.accounts.models import LoginFailure
from portal.db import utcnow
from portal.errors import TooManyRequests
from portal.i18n import N_, _, ngettext
from portal.sealing import SecretBox
from portal.settings import Settings

CLIENT_PURPOSE = "login-client"
DETACHED = ""
"""The e-mail of a failure that no longer counts against its account (only its client)."""


class Throttled(TooManyRequests):
    default_message = N_("Too many failed sign-in attempts.")


def client_hash(box: SecretBox, client_ip: str | None) -> str | None:
    """The client's address as a keyed hash: countable, never readable."""
    return box.sign(CLIENT_PURPOSE, client_ip) if client_ip else None


def delay_after(failures: int, *, settings: Settings, cap: float) -> float:
    """Seconds to wait after the last of ``failures`` recent failures."""
    over = failures - settings.login_free_failures
    if over < 0:
        return 0.0
    return min(cap, settings.login_delay_base_seconds * 2.0 ** min(over, 32))


def _recent(
    session: Session, settings: Settings, condition: ColumnElement[bool], now: datetime
) -> tuple[int, datetime | None]:
    since = now - timedelta(minutes=settings.login_failure_window_minutes)
    count, last = session.exec(
        select(func.count(), func.max(LoginFailure.at))
        .where(condition)
        .where(col(LoginFailure.at) > since)
    ).one()
    return int(count or 0), last


def seconds_to_wait(*, session: Session, settings: Settings, email: str, client: str | None) -> int:
    """How long this client must wait before trying this account again (0: go ahead)."""
    now = utcnow()
    waits = [0.0]
    count, last = _recent(session, settings, col(LoginFailure.email) == email, now)
    if last is not None:
        delay = delay_after(count, settings=settings, cap=settings.login_account_max_delay_seconds)
        waits.append((last + timedelta(seconds=delay) - now).total_seconds())
    if client is not None:
        count, last = _recent(session, settings, col(LoginFailure.client_hash) == client, now)
        if last is not None:
            delay = delay_after(
                count, settings=settings, cap=settings.login_client_max_delay_seconds
            )
            waits.append((last + timedelta(seconds=delay) - now).total_seconds())
    return math.ceil(max(waits))


def check(*, session: Session, settings: Settings, email: str, client: str | None) -> None:
    """Raise ``Throttled`` (429 with ``Retry-After``) while this attempt must wait."""
    wait = seconds_to_wait(session=session, settings=settings, email=email, client=client)
    if wait > 0:
        raise Throttled(
            _("Too many failed sign-in attempts. Try again in %(wait)s.", wait=_readable(wait)),
            retry_after=wait,
        )


def record_failure(*, session: Session, email: str, client: str | None) -> None:
    """Count one failure (the caller commits)."""
    session.add(LoginFailure(email=email, client_hash=client))


def clear_account(*, session: Session, email: str, client: str | None) -> None:
    """After a successful sign-in: the account's failures stop counting against it.

    The signing-in client's own failures on it are forgotten; other clients' failures stay
    counted against those clients (detached from the account), so a guesser cannot reset
    their count by having the owner, or an account of their own, sign in. Caller commits.
    """
    own = col(LoginFailure.email) == email
    if client is not None:
        session.exec(delete(LoginFailure).where(own, col(LoginFailure.client_hash) == client))
    session.exec(
        update(LoginFailure)
        .where(own)
        .values(email=DETACHED)
        .execution_options(synchronize_session=False)
    )


def purge_expired(*, session: Session, settings: Settings) -> int:
    """Delete failures older than the window: they no longer count (caller commits)."""
    since = utcnow() - timedelta(minutes=settings.login_failure_window_minutes)
    result: Any = session.exec(delete(LoginFailure).where(col(LoginFailure.at) <= since))
    return int(result.rowcount)


def _readable(seconds: int) -> str:
    if seconds < 60:
        return ngettext("%(num)s second", "%(num)s seconds", seconds)
    return ngettext("%(num)s minute", "%(num)s minutes", math.ceil(seconds / 60))
