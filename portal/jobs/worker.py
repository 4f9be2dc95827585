"""The job workers every server process runs (like housekeeping's ``run_forever``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import anyio
from sqlalchemy.engine import Engine

from portal.jobs.service import Handler, run_pending
from portal.settings import Settings
from storage.vault import Vault

log = logging.getLogger(__name__)


class JobWorkers:
    """``jobs_workers`` loops claiming due jobs, each woken early by ``wake``.

    A request that enqueues a job wakes this process's workers, so the job starts at once;
    any other replica finds it at its next poll.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        vault: Vault,
        settings: Settings,
        handlers: Mapping[str, Handler],
    ) -> None:
        self._engine = engine
        self._vault = vault
        self._settings = settings
        self._handlers = handlers
        self._wakeups: list[anyio.Event] = []

    def wake(self) -> None:
        """Have every idle worker look for jobs now (call on the event loop)."""
        for event in self._wakeups:
            event.set()

    async def run_forever(self) -> None:
        """One worker: claim and run jobs until cancelled; errors are logged, it goes on."""
        index = len(self._wakeups)
        self._wakeups.append(anyio.Event())
        while True:
            self._wakeups[index] = anyio.Event()
            try:
                await anyio.to_thread.run_sync(self._run_pending)
            except Exception:
                log.exception("job worker pass failed")
            with anyio.move_on_after(self._settings.jobs_poll_seconds):
                await self._wakeups[index].wait()

    def _run_pending(self) -> int:
        return run_pending(
            engine=self._engine,
            vault=self._vault,
            settings=self._settings,
            handlers=self._handlers,
        )
