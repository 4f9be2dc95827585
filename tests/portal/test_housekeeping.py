"""Housekeeping runs in one process at a time, cluster-wide, and seals the audit trail."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from portal import cluster, housekeeping
from portal.audit import service as audit_service
from portal.audit.service import SYSTEM
from portal.db import create_db_engine, session_scope, utcnow
from portal.jobs import service as jobs
from portal.settings import Settings
from reviewers import sweep as sweep_module
from storage.vault import Vault


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_concurrent_passes_on_postgresql_do_the_work_once(
    app, client, settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    """Two replicas (each its own engine) start a pass at the same moment: one works."""
    vault: Vault = app.state.vault
    sweeps: list[int] = []
    real_sweep = housekeeping.sweep

    def slow_sweep(**kwargs: object) -> sweep_module.SweepReport:
        sweeps.append(1)
        time.sleep(1)  # hold the pass open while the other replica tries
        return real_sweep(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(housekeeping, "sweep", slow_sweep)
    engines = [create_db_engine(settings.database_url) for _ in range(2)]
    reports: list[housekeeping.HousekeepingReport | None] = []
    start = threading.Barrier(2)

    def replica(engine: Engine) -> None:
        start.wait()
        reports.append(
            housekeeping.run_once(engine=engine, vault=vault, settings=settings, mail=False)
        )

    threads = [threading.Thread(target=replica, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for engine in engines:
        engine.dispose()
    assert len(sweeps) == 1
    assert sorted(report is None for report in reports) == [False, True]


def test_the_lock_is_free_again_after_a_pass(app, client, settings: Settings):
    engine: Engine = app.state.engine
    with session_scope(engine) as session:
        audit_service.record(session=session, ctx=SYSTEM, action="test.event")
    report = housekeeping.run_once(
        engine=engine, vault=app.state.vault, settings=settings, mail=False
    )
    assert report is not None and report.audit_sealed >= 1
    with cluster.exclusive(engine, housekeeping.HOUSEKEEPING_LOCK) as ours:
        assert ours
        with cluster.exclusive(engine, housekeeping.HOUSEKEEPING_LOCK) as theirs:
            assert not theirs


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_periodic_turn_goes_to_one_process_once_per_interval(app, client, settings: Settings):
    """Eight replicas ask for the same turn at once: one gets it; nobody again until the
    interval has passed since it was taken."""
    engines = [create_db_engine(settings.database_url) for _ in range(8)]
    every, now = timedelta(hours=1), utcnow()
    start = threading.Barrier(len(engines))
    granted: list[bool] = []

    def replica(engine: Engine, at: datetime) -> None:
        start.wait()
        with Session(engine) as session:
            granted.append(jobs.take_turn(session=session, name="test.turn", every=every, now=at))

    def race(at: datetime) -> list[bool]:
        granted.clear()
        threads = [threading.Thread(target=replica, args=(e, at)) for e in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        return sorted(granted)

    try:
        assert race(now) == [False] * 7 + [True]  # the first turn is an insert
        assert race(now + every / 2) == [False] * 8
        assert race(now + every) == [False] * 7 + [True]  # later turns are an update
    finally:
        for engine in engines:
            engine.dispose()


def test_the_orphan_pass_waits_for_its_interval(
    app, client, settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    """It lists the whole bucket: one pass per ``orphan_interval_seconds``, not per sweep."""
    engine: Engine = app.state.engine
    vault: Vault = app.state.vault
    listings: list[int] = []
    real_list = vault.list_objects

    def counted(*args: object, **kwargs: object) -> object:
        listings.append(1)
        return real_list(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(vault, "list_objects", counted)
    for _ in range(3):
        housekeeping.run_once(engine=engine, vault=vault, settings=settings, mail=False)
    assert len(listings) == 1
    settings.orphan_interval_seconds = 0
    housekeeping.run_once(engine=engine, vault=vault, settings=settings, mail=False)
    assert len(listings) == 2
