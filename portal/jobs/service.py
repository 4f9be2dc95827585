"""Asking for work, claiming it under a lease, and running what is due.

One claiming function serves both databases. On PostgreSQL the candidate row is locked with
``FOR UPDATE SKIP LOCKED``, so concurrent workers each get a different job without waiting; on
SQLite every write transaction begins ``IMMEDIATE`` (``portal.db``), so claims are serialised by
the database's single write lock. Either way the claim itself is one transaction: the job
moves to ``running`` with ``attempts + 1`` and a lease, and every later write of its worker
(lease renewal, done, failed) is conditional on that attempt still being the current one.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from portal.db import begin_read_only, utcnow
from portal.errors import PortalError
from portal.i18n import N_
from portal.jobs.models import Job, JobStatus, PeriodicTurn
from portal.settings import Settings
from storage.vault import Vault

log = logging.getLogger(__name__)
GAVE_UP = N_("The work stopped before it finished too many times.")
"""Stored as the failure of what the job was doing; translated where it is shown."""


class LeaseLost(Exception):
    """Another worker took this job over (its lease had run out): stop working on it."""


@dataclass(frozen=True)
class JobRun:
    """One attempt at a job, handed to its handler.

    While the handler runs, a heartbeat thread renews the lease every quarter lease; the
    handler calls ``check`` as it progresses and stops when the job was taken over.
    """

    engine: Engine
    vault: Vault
    settings: Settings
    job_id: uuid.UUID
    key: str
    attempt: int
    lost: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        """Raise ``LeaseLost`` once another worker has taken the job over."""
        if self.lost.is_set():
            raise LeaseLost()

    def renew(self) -> None:
        """Extend the lease; raises ``LeaseLost`` when another worker has taken the job."""
        with Session(self.engine) as session:
            if not _update_current(session, self, leased_until=utcnow() + _lease(self.settings)):
                raise LeaseLost()
            session.commit()


@dataclass(frozen=True)
class Handler:
    """What a kind of job does, and what is recorded when it is given up."""

    run: Callable[[JobRun], None]
    give_up: Callable[[JobRun, str], None]


def enqueue(*, session: Session, kind: str, key: str) -> Job:
    """Ask for ``kind`` of work on ``key`` once; the caller commits (with what it belongs to).

    Asking again for work already asked for returns the existing job.
    """
    existing = session.exec(select(Job).where(Job.kind == kind).where(Job.key == key)).first()
    if existing is not None:
        return existing
    job = Job(kind=kind, key=key)
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:  # asked for at the same moment elsewhere
        found = session.exec(select(Job).where(Job.kind == kind).where(Job.key == key)).one()
        return found
    return job


def take_turn(*, session: Session, name: str, every: timedelta, now: datetime) -> bool:
    """Whether ``name``'s periodic task is due (its last turn began ``every`` ago or never), and
    if so take this turn; commits. Of the processes asking at once, one gets it: the turn is a
    conditional update of one row (or the insert of its first), so a lost race is a no."""
    taken = session.exec(
        update(PeriodicTurn)
        .where(col(PeriodicTurn.name) == name)
        .where(col(PeriodicTurn.taken_at) <= now - every)
        .values(taken_at=now)
    ).rowcount
    if not taken and session.get(PeriodicTurn, name) is None:
        try:
            with session.begin_nested():
                session.add(PeriodicTurn(name=name, taken_at=now))
            taken = 1
        except IntegrityError:  # the first turn, taken at the same moment elsewhere
            taken = 0
    session.commit()
    return bool(taken)


def _due(settings: Settings, kinds: list[str], now: datetime) -> ColumnElement[bool]:
    """Pending and past its ``run_after``, or running with a lease that ran out (its worker
    died) and attempts left."""
    return and_(
        col(Job.kind).in_(kinds),
        or_(
            and_(col(Job.status) == JobStatus.pending.value, col(Job.run_after) <= now),
            and_(
                col(Job.status) == JobStatus.running.value,
                col(Job.leased_until) <= now,
                col(Job.attempts) < settings.jobs_max_attempts,
            ),
        ),
    )


def claim(
    *, session: Session, settings: Settings, kinds: list[str], now: datetime | None = None
) -> Job | None:
    """Take the oldest due job of ``kinds`` under a lease, or None; commits."""
    now = now or utcnow()
    job = session.exec(
        select(Job)
        .where(_due(settings, kinds, now))
        .order_by(col(Job.run_after), col(Job.created_at))
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if job is None:
        session.commit()
        return None
    job.status = JobStatus.running.value
    job.attempts += 1
    job.leased_until = now + _lease(settings)
    session.add(job)
    session.commit()
    return job


def run_pending(
    *,
    engine: Engine,
    vault: Vault,
    settings: Settings,
    handlers: Mapping[str, Handler],
    limit: int | None = None,
) -> int:
    """Claim and run due jobs until none is left (or ``limit`` ran); returns how many ran."""
    if not _anything_to_do(engine, settings, list(handlers)):
        return 0
    _give_up_exhausted(engine, vault, settings, handlers)
    ran = 0
    while limit is None or ran < limit:
        with Session(engine, expire_on_commit=False) as session:
            job = claim(session=session, settings=settings, kinds=list(handlers))
        if job is None:
            break
        run = JobRun(engine, vault, settings, job.id, job.key, job.attempts)
        _run_one(run, job.kind, handlers[job.kind])
        ran += 1
    return ran


def _anything_to_do(engine: Engine, settings: Settings, kinds: list[str]) -> bool:
    """Whether a job is due or to be given up: read without SQLite's write lock, so idle
    workers polling every few seconds never hold up requests."""
    with Session(engine) as session:
        begin_read_only(session)
        now = utcnow()
        found = session.exec(
            select(Job.id)
            .where(
                or_(
                    _due(settings, kinds, now),
                    and_(  # a lease ran out on its last attempt: to be given up
                        col(Job.kind).in_(kinds),
                        col(Job.status) == JobStatus.running.value,
                        col(Job.leased_until) <= now,
                    ),
                )
            )
            .limit(1)
        ).first()
        session.commit()
    return found is not None


@contextmanager
def _heartbeat(run: JobRun) -> Iterator[None]:
    """Renew the run's lease every quarter lease until the block ends (or the lease is lost)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(run.settings.jobs_lease_seconds / 4):
            try:
                run.renew()
            except LeaseLost:
                run.lost.set()
                return
            except Exception as exc:  # the database is away for a moment: try next beat
                log.warning("a job's lease could not be renewed: %s", type(exc).__name__)

    thread = threading.Thread(target=beat, name=f"job-heartbeat-{run.job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _run_one(run: JobRun, kind: str, handler: Handler) -> None:
    try:
        with _heartbeat(run):
            handler.run(run)
    except LeaseLost:
        log.warning("a %s job was taken over by another worker", kind)
        return
    except PortalError as exc:  # the work can never succeed (the case moved on): no retry
        log.info("a %s job ended without result: %s", kind, type(exc).__name__)
        if _finish(run, JobStatus.failed, error=exc.message):
            handler.give_up(run, exc.message)
        return
    except Exception as exc:
        # The class only: a message may quote a file name or a DICOM attribute.
        log.warning("a %s job failed (attempt %d): %s", kind, run.attempt, type(exc).__name__)
        _retry_or_give_up(run, handler, reason=type(exc).__name__)
        return
    _finish(run, JobStatus.done)


def _retry_or_give_up(run: JobRun, handler: Handler, *, reason: str) -> None:
    if run.attempt >= run.settings.jobs_max_attempts:
        if _finish(run, JobStatus.failed, error=f"{GAVE_UP} Last error: {reason}."):
            handler.give_up(run, GAVE_UP)
        return
    delay = run.settings.jobs_retry_seconds * 2 ** (run.attempt - 1)
    with Session(run.engine) as session:
        _update_current(
            session,
            run,
            status=JobStatus.pending.value,
            leased_until=None,
            run_after=utcnow() + timedelta(seconds=delay),
            error=reason,
        )
        session.commit()


def _give_up_exhausted(
    engine: Engine, vault: Vault, settings: Settings, handlers: Mapping[str, Handler]
) -> None:
    """Jobs whose every attempt died with its worker (a lease ran out each time) fail."""
    with Session(engine, expire_on_commit=False) as session:
        exhausted = session.exec(
            select(Job)
            .where(col(Job.kind).in_(list(handlers)))
            .where(Job.status == JobStatus.running.value)
            .where(col(Job.leased_until) <= utcnow())
            .where(col(Job.attempts) >= settings.jobs_max_attempts)
        ).all()
        session.commit()
    for job in exhausted:
        run = JobRun(engine, vault, settings, job.id, job.key, job.attempts)
        if _finish(run, JobStatus.failed, error=GAVE_UP):
            log.warning("a %s job was given up after %d attempts", job.kind, job.attempts)
            handlers[job.kind].give_up(run, GAVE_UP)


def _finish(run: JobRun, status: JobStatus, *, error: str | None = None) -> bool:
    """Record the attempt's end, unless another worker took the job meanwhile."""
    with Session(run.engine) as session:
        mine = _update_current(
            session,
            run,
            status=status.value,
            leased_until=None,
            finished_at=utcnow(),
            error=error[:255] if error else None,
        )
        session.commit()
    return mine


def _update_current(session: Session, run: JobRun, **values: Any) -> bool:
    """Update the job if ``run`` is still its current attempt; True when it was."""
    result: Any = session.exec(
        update(Job)
        .where(col(Job.id) == run.job_id)
        .where(col(Job.attempts) == run.attempt)
        .where(col(Job.status) == JobStatus.running.value)
        .values(**values)
    )
    return int(result.rowcount) == 1


def _lease(settings: Settings) -> timedelta:
    return timedelta(seconds=settings.jobs_lease_seconds)
