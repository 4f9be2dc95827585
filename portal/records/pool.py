"""Render records in worker processes with a memory and a time limit (``pebble.ProcessPool``).

A hostile PDF or photo can make PDFium or Pillow allocate gigabytes or spin for minutes. Drawn
here, it can at worst fail its own request: a worker past its address-space limit fails
(``MemoryError``) or dies, a worker past its time limit is killed, and the pool starts a new
one for the next request. The web process never parses a record itself, and never holds the
memory a decoder asked for.

Why pebble: the standard library's ``ProcessPoolExecutor`` cannot stop one task; killing a
worker breaks the whole executor (``BrokenProcessPool``) and every other request in it.
pebble's pool kills only the worker whose task ran out of time and replaces it, reports a
worker that died as ``ProcessExpired`` on that task alone, and recycles workers after a number
of tasks.

Workers come from the ``forkserver`` start method: never a fork of the threaded web server
(which holds keys, sessions and other patients' plaintext), but of a small server process that
imported only ``portal.records.worker`` and was started with an environment stripped of
secrets. A new worker is a fork of that, so replacing a killed one costs milliseconds (plus,
as with any spawn or forkserver child, re-running the server's main script when it was started
from one: the ``portal`` script imports ``portal.cli``, which builds nothing at import).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import forkserver
from typing import Any, TypeVar

from pebble import ProcessExpired, ProcessFuture, ProcessPool

from portal import i18n
from portal.errors import ServiceUnavailable
from portal.i18n import N_
from portal.records import worker
from portal.records.render import Rendered, UnreadableRecord
from portal.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
TASKS_PER_WORKER = 200
"""A worker is replaced after this many renders, so nothing a decoder leaks accumulates."""
QUEUE_WAIT_FACTOR = 3
"""A request waits for a free worker and its render at most this many time limits in all."""
_START_LOCK = threading.Lock()


class RecordTooComplex(UnreadableRecord):
    default_message = N_(
        "This document is too large or too complex to show here. Download the original to "
        "open it on your computer."
    )


class RenderTimedOut(ServiceUnavailable):
    default_message = N_(
        "This page took too long to draw and was stopped. Try again later, or download the "
        "original to open it on your computer."
    )


class RendererBusy(ServiceUnavailable):
    default_message = N_("The document viewer is busy. Please try again in a minute.")


@dataclass(frozen=True)
class RenderLimits:
    """What one render may use; from the ``PORTAL_RECORD_*`` settings."""

    workers: int
    memory_bytes: int
    seconds: float
    max_pixels: int
    max_bytes: int
    """Originals larger than this are not handed to a worker (nor decrypted for one)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> RenderLimits:
        return cls(
            workers=settings.record_render_workers,
            memory_bytes=settings.record_render_memory_mb * 1024 * 1024,
            seconds=settings.record_render_seconds,
            max_pixels=settings.record_max_pixels,
            max_bytes=settings.record_render_max_mb * 1024 * 1024,
        )


class RenderPool:
    """Worker processes that measure and draw records; one per application, built in the
    lifespan. Workers start on the first render (or :meth:`warm`) and are replaced when one
    is killed, dies, or has done ``TASKS_PER_WORKER`` renders."""

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        start_fork_server()
        self._pool = self._new_pool()

    def measure(self, *, kind: str, data: bytes) -> list[tuple[float, float]]:
        """Per page: a PDF's size in points, or the photo's upright size in pixels.

        Raises the errors of :meth:`draw`.
        """
        return self._run(worker.measure_record, kind, data, self.limits.max_pixels)

    def draw(self, *, kind: str, data: bytes, page: int, width: int) -> Rendered:
        """Page ``page`` (from 1) of a PDF, or the photo, as an image we encoded.

        Raises
        ------
        UnreadableRecord, ProtectedRecord, RecordTooLarge, PageNotFound
            As ``portal.records.render`` raises them inside the worker.
        RecordTooComplex
            The worker ran out of memory or died drawing it.
        RenderTimedOut
            The worker ran past the time limit and was killed.
        RendererBusy
            No worker became free in time.
        """
        return self._run(worker.draw_record, kind, data, page, width, self.limits.max_pixels)

    def warm(self) -> int:
        """Start the workers now instead of at the first request; the process id of the one
        that answered."""
        return self._run(worker.ready)

    def peak_memory(self) -> int:
        """The peak resident memory, in bytes, of the worker that answers (benchmarks)."""
        return self._run(worker.peak_memory)

    def close(self) -> None:
        """Stop the workers, abandoning any render still running."""
        with self._lock:
            _stop(self._pool)

    def _run(self, function: Callable[..., T], *args: Any) -> T:
        future = self._schedule(function, *args)
        try:
            return future.result(timeout=self.limits.seconds * QUEUE_WAIT_FACTOR)
        except FutureTimeout:
            if not future.done():  # still queued or running: give up on it (kills its worker)
                future.cancel()  # type: ignore[no-untyped-call]  # pebble leaves it untyped
                raise RendererBusy() from None
            _log_stop("time limit")
            raise RenderTimedOut() from None
        except (MemoryError, ProcessExpired) as exc:
            _log_stop("memory" if isinstance(exc, MemoryError) else "worker died", exc)
            raise RecordTooComplex() from None
        except CancelledError:
            raise RendererBusy() from None
        except BrokenProcessPool:  # the pool itself broke (all workers lost at once): renew it
            self._replace_pool()
            raise RendererBusy() from None

    def _schedule(self, function: Callable[..., T], *args: Any) -> ProcessFuture[T]:
        with self._lock:
            try:
                return self._pool.schedule(
                    worker.in_language,
                    args=(i18n.current(), function, *args),
                    timeout=self.limits.seconds,
                )
            except RuntimeError:  # pebble: "the Pool is not active" after it broke
                log.warning("record render pool was broken; starting a new one")
                _stop(self._pool)
                self._pool = self._new_pool()
                return self._pool.schedule(
                    worker.in_language,
                    args=(i18n.current(), function, *args),
                    timeout=self.limits.seconds,
                )

    def _replace_pool(self) -> None:
        with self._lock:
            _stop(self._pool)
            self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPool:
        # Replacing a worker (or this pool) reuses the fork server started in __init__.
        context = multiprocessing.get_context("forkserver")
        return ProcessPool(
            max_workers=self.limits.workers,
            max_tasks=TASKS_PER_WORKER,
            initializer=worker.limit_worker,
            initargs=(self.limits.memory_bytes,),
            context=context,
        )


def start_fork_server() -> None:
    """Start this process's fork server (once) with only ``portal.records.worker`` imported
    and an environment without secrets.

    The fork server is one per process and inherits the environment it is started with, so
    the variables a worker does not need are taken out of ``os.environ`` for the moment it
    starts (in the lifespan, before requests are served) and put back at once. Called again
    while it runs, this does nothing. (Should the fork server ever die, multiprocessing starts
    a new one with the whole environment; the worker still drops it in ``limit_worker``.)
    """
    with _START_LOCK:
        if _fork_server_running():
            return
        multiprocessing.get_context("forkserver").set_forkserver_preload([worker.__name__])
        with _environment(worker.worker_environment(dict(os.environ))):
            forkserver.ensure_running()


def _fork_server_running() -> bool:
    """Whether this process started its fork server already (multiprocessing has no public
    question for it; ``ensure_running`` itself restarts one that died)."""
    return getattr(forkserver._forkserver, "_forkserver_pid", None) is not None


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _stop(pool: ProcessPool) -> None:
    """Stop a pool's workers (killing any still drawing) and wait for its threads."""
    pool.stop()  # type: ignore[no-untyped-call]  # pebble leaves it untyped
    pool.join(timeout=10)


def _log_stop(reason: str, exc: BaseException | None = None) -> None:
    """Why a render was stopped; never anything of the record (names, contents)."""
    exit_code = getattr(exc, "exitcode", None)
    log.warning("record render stopped", extra={"reason": reason, "exit_code": exit_code})
