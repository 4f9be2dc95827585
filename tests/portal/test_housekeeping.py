"""Housekeeping runs in one process at a time, cluster-wide, and seals the audit trail."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy.engine import Engine

from portal import cluster, housekeeping
from portal.audit import service as audit_service
from portal.audit.service import SYSTEM
from portal.db import create_db_engine, session_scope
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
