"""Upload capacity of one server process: threads of its own and a cap per account.

Upload work (encrypting, storing, validating) runs on its own ``CapacityLimiter`` so that it
never takes the threads every other route (sign-in, pages, ``/readyz``) needs. Each account
may have a few upload requests in flight at once; more answer 429. Both are per process:
with N processes (``PORTAL_WORKERS``, replicas) an account may hold N times as many.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import anyio
import anyio.to_thread

from portal.errors import Conflict, TooManyRequests
from portal.i18n import _, ngettext
from portal.settings import Settings

T = TypeVar("T")


class UploadCapacity:
    """Built once in the app's lifespan; used only from the event loop (no locking needed)."""

    def __init__(self, settings: Settings) -> None:
        self.limiter = anyio.CapacityLimiter(settings.upload_workers)
        self.per_account = settings.uploads_per_account
        self.retry_after = settings.upload_retry_after_seconds
        self._in_flight: Counter[uuid.UUID] = Counter()
        self._receiving: set[uuid.UUID] = set()

    @contextmanager
    def admit(self, account_id: uuid.UUID) -> Iterator[None]:
        """Count one upload request of the account while it runs; refuse one over the cap."""
        if self._in_flight[account_id] >= self.per_account:
            raise TooManyRequests(
                ngettext(
                    "You already have %(num)s upload in progress. "
                    "Wait for it to finish, then try again.",
                    "You already have %(num)s uploads in progress. "
                    "Wait for one of them to finish, then try again.",
                    self.per_account,
                ),
                retry_after=self.retry_after,
            )
        self._in_flight[account_id] += 1
        try:
            yield
        finally:
            self._in_flight[account_id] -= 1
            if self._in_flight[account_id] <= 0:
                del self._in_flight[account_id]

    @contextmanager
    def receiving(self, upload_id: uuid.UUID) -> Iterator[None]:
        """One request at a time sends data to a resumable upload; a second answers 409.

        Cheap and early in one process; the row lock when a chunk is recorded is what holds
        across processes.
        """
        if upload_id in self._receiving:
            raise Conflict(_("Another request is already sending data to this upload."))
        self._receiving.add(upload_id)
        try:
            yield
        finally:
            self._receiving.discard(upload_id)

    def in_flight(self, account_id: uuid.UUID | None = None) -> int:
        """Upload requests being received now: the account's, or everyone's."""
        return self._in_flight[account_id] if account_id else sum(self._in_flight.values())

    async def run(self, work: Callable[[], T]) -> T:
        """Run blocking upload work in one of the upload threads."""
        return await anyio.to_thread.run_sync(work, limiter=self.limiter)
