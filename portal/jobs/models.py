"""The job table: one row per piece of work, claimed under a lease by any replica."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Column, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from portal.db import UTCDateTime, new_id, utcnow


class JobStatus(enum.StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"


class Job(SQLModel, table=True):
    """Work to do once, by whichever worker claims it first.

    ``kind`` names the handler and ``key`` the thing it works on (an upload's id), so asking
    twice for the same work finds the job already there.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("kind", "key"),
        Index("ix_jobs_status_run_after", "status", "run_after"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    kind: str = Field(max_length=64)
    key: str = Field(max_length=64)
    status: str = Field(
        default=JobStatus.pending.value, sa_column=Column(String(16), nullable=False)
    )
    attempts: int = 0
    """Claims so far, the one running included."""
    run_after: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    """Not claimed before this (a failed attempt waits before the next)."""
    leased_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    """A running job whose lease passed is taken again: its worker is presumed dead."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    error: str | None = Field(default=None, max_length=255)
    """Why the last attempt failed, for people: an exception's class, never its message
    (which may quote patient data)."""


class PeriodicTurn(SQLModel, table=True):
    """When the cluster last took its turn at a periodic task (``portal.jobs.service.take_turn``):
    work too heavy for every housekeeping pass runs at most once per its own interval."""

    __tablename__ = "periodic_turns"

    name: str = Field(primary_key=True, max_length=64)
    taken_at: datetime = Field(sa_type=UTCDateTime)
