"""Records renderer: memory on a hostile PNG, and the latency of normal pages, in and out of
the render workers.

Run with ``python -m bench.records_memory``. Needs no services; prints figures, asserts
nothing. The hostile file is a solid-colour RGB PNG of 13000 x 13000 pixels: 0.5 MB on disk,
507 MB decoded, 169 megapixels (under the old 200 MP intake limit, over the new 50 MP one).

* ``in-process``: ``portal.records.render`` called in a fresh interpreter, as the web process
  did before the workers: its peak resident memory (VmHWM) is what one view cost the server.
* ``workers``: the same file through ``RenderPool`` (one worker): with the default settings;
  with the pixel check lifted (as for a file stored before the limit, rendered by a server
  configured to allow it); and lifted with a smaller memory limit. The worker's peak, and how
  much this (the parent) process grew over several renders.
* latency of an A4 text page and a 12 MP photo at 1200 px, in process and through a worker.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from portal.errors import PortalError
from portal.records import render
from portal.records.pool import RenderLimits, RenderPool
from portal.settings import Settings
from tests.portal.samples import solid_png

MIB = 1024 * 1024
SIDE = 13_000
LENIENT_PIXELS = 400_000_000
IN_PROCESS = """
import json, sys
from pathlib import Path
from typing import Any
from portal.records import render
data = Path(sys.argv[1]).read_bytes()
def status(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
before = status("VmRSS")
try:
    render.render_photo(data, width_px=1200, max_pixels=int(sys.argv[2]))
    outcome = "rendered"
except Exception as exc:
    outcome = type(exc).__name__
print(json.dumps({"before": before, "peak": status("VmHWM"), "after": status("VmRSS"),
                  "outcome": outcome}))
"""


def a4_text_pdf() -> bytes:
    from fpdf import FPDF

    document = FPDF()
    document.add_page()
    document.set_font("helvetica", size=11)
    for line in range(45):
        document.cell(0, 5.5, f"Line {line}: haemoglobin, leukocytes, platelets within range.")
        document.ln(5.5)
    return bytes(document.output())


def phone_photo() -> bytes:
    """A 4000 x 3000 JPEG with some detail (a gradient), like a 12 MP phone photo."""
    gradient = Image.linear_gradient("L").resize((4000, 3000))
    out = io.BytesIO()
    Image.merge("RGB", (gradient, gradient.rotate(90), gradient)).save(out, "JPEG", quality=90)
    return out.getvalue()


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def in_process(path: Path, max_pixels: int) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, str(path), str(max_pixels)],
        capture_output=True,
        check=True,
        text=True,
    )
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


@dataclass(frozen=True)
class WorkerFigures:
    outcomes: list[str]
    worker_idle_peak: int
    worker_peak: int
    parent_growth: int
    memory_limit: int


def through_workers(data: bytes, max_pixels: int, memory_bytes: int, renders: int) -> WorkerFigures:
    defaults = RenderLimits.from_settings(Settings())
    limits = RenderLimits(
        workers=1,
        memory_bytes=memory_bytes,
        seconds=60.0,
        max_pixels=max_pixels,
        max_bytes=defaults.max_bytes,
    )
    pool = RenderPool(limits)
    try:
        pool.warm()
        idle_worker = pool.peak_memory()
        before = rss()
        outcomes = []
        for _ in range(renders):
            try:
                pool.draw(kind="png", data=data, page=1, width=1200)
                outcomes.append("rendered")
            except PortalError as exc:
                outcomes.append(type(exc).__name__)
        return WorkerFigures(
            outcomes=outcomes,
            worker_idle_peak=idle_worker,
            worker_peak=pool.peak_memory(),
            parent_growth=rss() - before,
            memory_limit=limits.memory_bytes,
        )
    finally:
        pool.close()


def timings(function: Callable[[], object], repeat: int) -> tuple[float, float]:
    function()  # warm
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def latency(repeat: int) -> None:
    pdf, photo = a4_text_pdf(), phone_photo()
    max_pixels = Settings().record_max_pixels
    pool = RenderPool(RenderLimits.from_settings(Settings()))
    try:
        pool.warm()
        cases: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
            (
                "A4 text page at 1200 px",
                lambda: render.render_pdf_page(pdf, page=1, width_px=1200),
                lambda: pool.draw(kind="pdf", data=pdf, page=1, width=1200),
            ),
            (
                "12 MP JPEG photo at 1200 px",
                lambda: render.render_photo(photo, width_px=1200, max_pixels=max_pixels),
                lambda: pool.draw(kind="jpeg", data=photo, page=1, width=1200),
            ),
        ]
        print(f"\nlatency over {repeat} renders (median / p95, ms):")
        for name, local, remote in cases:
            local_median, local_p95 = timings(local, repeat)
            remote_median, remote_p95 = timings(remote, repeat)
            print(
                f"  {name}: in process {local_median:.0f} / {local_p95:.0f}, "
                f"through a worker {remote_median:.0f} / {remote_p95:.0f}"
            )
    finally:
        pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=3, help="hostile renders per case")
    parser.add_argument("--repeat", type=int, default=20, help="normal renders timed per case")
    args = parser.parse_args()
    data = solid_png(SIDE, SIDE)
    print(f"hostile PNG: {SIDE} x {SIDE}, {len(data) / MIB:.2f} MiB on disk")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hostile.png"
        path.write_bytes(data)
        local = in_process(path, LENIENT_PIXELS)
    print(
        f"in process, no pixel check: {local['outcome']}; peak RSS "
        f"{local['peak'] / MIB:.0f} MiB (from {local['before'] / MIB:.0f})"
    )
    settings = Settings()
    default_memory = settings.record_render_memory_mb * MIB
    for label, max_pixels, memory_bytes in (
        ("workers, default 50 MP check", settings.record_max_pixels, default_memory),
        ("workers, pixel check lifted", LENIENT_PIXELS, default_memory),
        ("workers, pixel check lifted, 512 MiB limit", LENIENT_PIXELS, 512 * MIB),
    ):
        figures = through_workers(data, max_pixels, memory_bytes, args.renders)
        print(
            f"{label}: {', '.join(figures.outcomes)}; worker peak RSS "
            f"{figures.worker_peak / MIB:.0f} MiB (idle {figures.worker_idle_peak / MIB:.0f}, "
            f"limit {figures.memory_limit / MIB:.0f} MiB address space); parent grew "
            f"{figures.parent_growth / MIB:.1f} MiB over {args.renders} renders"
        )
    latency(args.repeat)


if __name__ == "__main__":
    main()
