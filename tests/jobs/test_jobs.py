"""The job table: asked for once, claimed under a lease, retried a bounded number of times."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from portal.db import utcnow
from portal.jobs import service as jobs
from portal.jobs.models import Job, JobStatus
from portal.jobs.service import Handler, JobRun
from portal.settings import Settings

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
POSTGRES = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
KIND = "test.record"  # no worker of the app runs this kind: the test drives it


def ask(app: FastAPI, *keys: str) -> None:
    with Session(app.state.engine) as session:
        for key in keys:
            jobs.enqueue(session=session, kind=KIND, key=key)
        session.commit()


def job(app: FastAPI, key: str) -> Job:
    with Session(app.state.engine) as session:
        return session.exec(select(Job).where(Job.key == key)).one()


def recording(ran: list[str], fail_with: Exception | None = None) -> dict[str, Handler]:
    def run(run: JobRun) -> None:
        ran.append(run.key)
        if fail_with is not None:
            raise fail_with

    return {KIND: Handler(run=run, give_up=lambda run, reason: ran.append(f"gave up: {reason}"))}


@SQLITE
def test_a_job_asked_for_twice_runs_once(app: FastAPI, client: TestClient, settings: Settings):
    ask(app, "a", "a")
    ran: list[str] = []
    handlers = recording(ran)
    engine, vault = app.state.engine, app.state.vault
    assert jobs.run_pending(engine=engine, vault=vault, settings=settings, handlers=handlers) == 1
    assert jobs.run_pending(engine=engine, vault=vault, settings=settings, handlers=handlers) == 0
    assert ran == ["a"] and job(app, "a").status == JobStatus.done


@SQLITE
def test_an_expired_lease_is_claimed_again(app: FastAPI, client: TestClient, settings: Settings):
    ask(app, "b")
    with Session(app.state.engine) as session:
        first = jobs.claim(session=session, settings=settings, kinds=[KIND])
        assert first is not None and first.attempts == 1
        assert jobs.claim(session=session, settings=settings, kinds=[KIND]) is None  # leased
        later = utcnow() + timedelta(seconds=settings.jobs_lease_seconds + 1)
        again = jobs.claim(session=session, settings=settings, kinds=[KIND], now=later)
        assert again is not None and again.id == first.id and again.attempts == 2
    # The first worker, back from the dead, can no longer renew or finish the job.
    stale = JobRun(app.state.engine, app.state.vault, settings, first.id, "b", attempt=1)
    with pytest.raises(jobs.LeaseLost):
        stale.renew()


@SQLITE
def test_a_job_that_keeps_failing_ends_failed_with_a_reason_and_no_patient_data(
    app: FastAPI, client: TestClient, settings: Settings
):
    settings.jobs_max_attempts, settings.jobs_retry_seconds = 3, 0
    ask(app, "c")
    ran: list[str] = []
    handlers = recording(ran, fail_with=ValueError("Ivanova Maria, spine MRI"))
    jobs.run_pending(
        engine=app.state.engine, vault=app.state.vault, settings=settings, handlers=handlers
    )
    assert ran == ["c", "c", "c", f"gave up: {jobs.GAVE_UP}"]
    failed = job(app, "c")
    assert failed.status == JobStatus.failed and failed.attempts == 3
    assert failed.error is not None and "ValueError" in failed.error
    assert "Ivanova" not in failed.error


@SQLITE
def test_a_job_whose_worker_died_every_time_is_given_up(
    app: FastAPI, client: TestClient, settings: Settings
):
    settings.jobs_max_attempts = 1
    ask(app, "d")
    with Session(app.state.engine) as session:
        assert jobs.claim(session=session, settings=settings, kinds=[KIND]) is not None
        claimed = session.exec(select(Job).where(Job.key == "d")).one()
        claimed.leased_until = utcnow() - timedelta(seconds=1)  # its worker was killed
        session.add(claimed)
        session.commit()
    ran: list[str] = []
    jobs.run_pending(
        engine=app.state.engine, vault=app.state.vault, settings=settings, handlers=recording(ran)
    )
    assert ran == [f"gave up: {jobs.GAVE_UP}"] and job(app, "d").status == JobStatus.failed


@POSTGRES
def test_two_workers_never_run_one_job_at_once(
    app: FastAPI, client: TestClient, settings: Settings
):
    keys = [f"k{n}" for n in range(12)]
    ask(app, *keys)
    running: set[str] = set()
    ran: list[str] = []
    overlaps: list[str] = []
    lock = threading.Lock()

    def run(run: JobRun) -> None:
        with lock:
            if run.key in running:
                overlaps.append(run.key)
            running.add(run.key)
            ran.append(run.key)
        time.sleep(0.05)  # long enough for the other worker to try the same row
        with lock:
            running.discard(run.key)

    handlers = {KIND: Handler(run=run, give_up=lambda run, reason: None)}

    def worker() -> None:
        jobs.run_pending(
            engine=app.state.engine, vault=app.state.vault, settings=settings, handlers=handlers
        )

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not overlaps and sorted(ran) == sorted(keys)  # each once, by one worker
    with Session(app.state.engine) as session:
        done = session.exec(select(Job).where(Job.status == JobStatus.done.value)).all()
    assert len(done) == len(keys) and {j.attempts for j in done} == {1}
