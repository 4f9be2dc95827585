"""What runs inside a render worker process: limits set once, then one record at a time.

The parent (``portal.records.pool``) starts these processes from a fork server that imported
this module and nothing of the application: no settings, no keys, no database, no caches of
other patients' files. A worker receives the plaintext of one record and returns a rendered
image or the page sizes; it never sees where the bytes came from.
"""

from __future__ import annotations

import os
import resource
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from portal import i18n
from portal.records import render
from portal.records.render import Rendered

T = TypeVar("T")
PDF = "pdf"
KEPT_ENVIRONMENT = frozenset({"PATH", "PYTHONPATH", "PYTHONHOME", "LANG", "LC_ALL", "TZ", "HOME"})
"""The only variables a worker keeps; everything else (``PORTAL_*`` secrets, cloud
credentials) is dropped. The fork server is started with no more than these (see the pool)."""
QUIET_THREADS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
"""numpy's BLAS would start a thread per core, each reserving address space the limit counts."""


def worker_environment(environ: dict[str, str]) -> dict[str, str]:
    """The environment a worker (and the fork server it comes from) is given."""
    kept = {name: value for name, value in environ.items() if name in KEPT_ENVIRONMENT}
    return kept | QUIET_THREADS


def limit_worker(memory_bytes: int) -> None:
    """Run once in each new worker: cap its address space, forbid core dumps, drop the
    environment. Allocations past the cap fail (``MemoryError``, or PDFium aborts the process);
    either way only this worker's current request fails and the pool starts another."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash must not write plaintext to disk
    # The pool stops a worker past its time limit with SIGTERM. A Python handler (pebble
    # installs one) would wait until PDFium or Pillow returns to the interpreter, which is the
    # very thing that does not happen; the default action ends the process at once.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    kept = worker_environment(dict(os.environ))
    os.environ.clear()
    os.environ.update(kept)


def in_language(language: str, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` with its messages (the errors it raises) in ``language``, the
    language of the request that asked for it."""
    with i18n.speaking(language):
        return function(*args)


def ready() -> int:
    """A no-op the pool schedules to start its workers ahead of the first request."""
    return os.getpid()


def peak_memory() -> int:
    """This worker's peak resident memory in bytes (``VmHWM``), for benchmarks."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def measure_record(kind: str, data: bytes, max_pixels: int) -> list[tuple[float, float]]:
    """Per page: a PDF's size in points as displayed, or a photo's upright size in pixels."""
    if kind == PDF:
        return render.pdf_page_sizes(data)
    width, height = render.photo_size(data, max_pixels=max_pixels)
    return [(float(width), float(height))]


def draw_record(kind: str, data: bytes, page: int, width: int, max_pixels: int) -> Rendered:
    """Page ``page`` of a PDF, or a photo, ``width`` pixels wide (a photo at most that)."""
    if kind == PDF:
        return render.render_pdf_page(data, page=page, width_px=width)
    return render.render_photo(data, width_px=width, max_pixels=max_pixels)
