"""Browser benchmark: how long a reader waits for the first image, in real Chromium.

Run: ``.venv/bin/python -m bench.browser`` (``--rounds 10 --instances 100``). Prints figures,
asserts nothing.

Starts its own SeaweedFS and ``portal serve`` (SQLite) on loopback, as ``bench.ingest`` does,
uploads a synthetic 512 x 512 16-bit CT series through the API, submits the case to a
specialist (made in the database with a TOTP secret, like ``portal users add``), signs the
specialist in through ``/login`` in Debian's Chromium, accepts the case, then times:

* viewer: navigation start of ``/cases/{id}/viewer?series=…`` to the ``load`` of
  ``#viewer-image`` with ``naturalWidth > 0`` (the first frame on screen);
* case page: navigation start of ``/cases/{id}`` to the ``load`` of the first series thumbnail;
* OHIF ("Open in OHIF"): navigation start of the study's OHIF address to the first
  ``CORNERSTONE_IMAGE_RENDERED`` event (the first image drawn in a viewport), when the viewer is
  installed (``portal ohif install``).

Both are read in the page (``performance.now()`` in a capturing ``load`` listener added as an
init script), so Playwright's polling does not count. Each round is a fresh browser context
(the images are ``no-store``, so there is no browser cache to warm anyway), kept open until
the network is idle (the viewer's prefetches would otherwise still run in the next round).
*Cold*: the portal process is restarted before the round (no parsed data set, frame or
thumbnail cached, first view of the series in this process); *warm*: the same process, after
a first view.

The server does not send ``Server-Timing``; for the frame the request's time to first byte
(``responseStart - requestStart`` from Resource Timing) is printed instead: on loopback it is
essentially the server's time to answer (read, decrypt, decode, window, PNG).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyotp

from bench.clients import upload_all
from bench.ingest import Portal, ct_series
from bench.people import enrolled_staff
from portal.accounts.models import Role
from portal.cases.consent import CURRENT_VERSION
from portal.db import create_db_engine
from portal.ohif import urls
from portal.ohif.bundle import installed_for
from portal.settings import Settings
from tests.fixtures.live import settings_env
from tests.services import wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PASSWORD = "browser benchmark passphrase 2026"  # noqa: S105 - a throwaway account
# Runs before the page's own scripts and is not subject to its CSP: notes when the first
# frame and the first thumbnail have loaded, in ms since the navigation started.
MARKS = """
window.__marks = {};
document.addEventListener("load", function (event) {
  var img = event.target;
  if (!(img instanceof HTMLImageElement) || !(img.naturalWidth > 0)) { return; }
  if (img.id === "viewer-image" && window.__marks.frame === undefined) {
    window.__marks.frame = performance.now();
    window.__marks.frameUrl = img.currentSrc;
  }
  if (img.src.indexOf("/thumbnail") !== -1 && window.__marks.thumbnail === undefined) {
    window.__marks.thumbnail = performance.now();
  }
}, true);
// Cornerstone's events do not bubble; a capturing listener on the document still hears them.
document.addEventListener("CORNERSTONE_IMAGE_RENDERED", function () {
  if (window.__marks.ohif === undefined) { window.__marks.ohif = performance.now(); }
}, true);
"""
REPO = Path(__file__).resolve().parents[1]


class Server(Portal):
    """``bench.ingest``'s SeaweedFS + ``portal serve``, with a restart of the portal alone."""

    def __enter__(self) -> Server:
        super().__enter__()
        return self

    def restart(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=30)
        env = {
            **settings_env(self.settings),
            "PORTAL_PORT": str(self.port),
            "PORTAL_LOG_LEVEL": "WARNING",
            "PORTAL_WORKERS": str(self.workers),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "portal.cli", "serve"],
            env=env,
            stdout=(self.root / "serve.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        assert wait_for(self._ready, timeout=60), "portal did not restart"


def make_specialist(server: Server) -> tuple[str, str]:
    """A spine specialist reading CT, enrolled in TOTP; returns (e-mail, TOTP secret)."""
    settings = server.settings
    email = f"bench-sp-{uuid.uuid4().hex[:8]}@example.org"
    engine = create_db_engine(settings.database_url)
    profile = {
        "specialties": ["spine_surgery"],
        "body_regions": ["spine"],
        "modalities": ["CT"],
        "languages": ["en"],
    }
    _, secret = enrolled_staff(
        engine=engine,
        settings=settings,
        role=Role.specialist,
        email=email,
        password=PASSWORD,
        full_name="Bench Specialist",
        profile=profile,
    )
    engine.dispose()
    return email, secret


def submitted_case(server: Server, paths: list[Path]) -> tuple[str, str, str]:
    """A patient's case with the series uploaded, consent given and submitted: (case, series,
    study UID)."""
    headers = server.patient()
    case_id = server.new_case(headers)
    upload_all(f"{server.url}/api/cases/{case_id}/files", paths, 4, headers)
    api = f"{server.url}/api/cases/{case_id}"
    consent = {"accepted": True, "version": CURRENT_VERSION}
    httpx.post(f"{api}/consent", json=consent, headers=headers).raise_for_status()
    submitted = httpx.post(f"{api}/submit", headers=headers, timeout=60)
    submitted.raise_for_status()
    assert submitted.json()["status"] == "assigned", submitted.json()["status"]
    studies = httpx.get(f"{api}/studies", headers=headers).json()["studies"]
    return case_id, studies[0]["series"][0]["id"], studies[0]["study_instance_uid"]


def figures(label: str, values: list[float]) -> None:
    ordered = sorted(values)
    p95 = float(np.percentile(ordered, 95))
    print(
        f"  {label:<46} median {statistics.median(ordered):7.1f} ms   p95 {p95:7.1f} ms"
        f"   n={len(values)}"
    )


def main(argv: list[str] | None = None) -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(prog="python -m bench.browser")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--instances", type=int, default=100)
    options = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="portal-bench-browser-"))
    root.chmod(0o755)
    try:
        paths = ct_series(root / "series", options.instances)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        print(f"series: {len(paths)} CT instances of 512x512x16 bit, {megabytes:.0f} MB")
        with Server(root / "portal") as server, sync_playwright() as playwright:
            release = installed_for(Settings(ohif_dir=REPO / "var" / "ohif"))
            if release is not None:
                server.settings.ohif_dir = REPO / "var" / "ohif"
                server.restart()
            email, secret = make_specialist(server)
            case_id, series_id, study_uid = submitted_case(server, paths)
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            print(f"browser: {CHROMIUM} {browser.version}, headless; portal serve, 1 worker")
            context = browser.new_context(base_url=server.url)
            page = context.new_page()
            page.goto("/login?next=/cases")
            page.get_by_label("E-mail").fill(email)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_label("One-time code").fill(pyotp.TOTP(secret).now())
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/cases")
            page.goto(f"/cases/{case_id}")
            page.locator("#accept-case").click()
            page.wait_for_url(f"**/cases/{case_id}?done=accepted")
            signed_in = context.storage_state()
            context.close()

            def visit(path: str, mark: str) -> dict[str, Any]:
                fresh = browser.new_context(base_url=server.url, storage_state=signed_in)
                fresh.add_init_script(script=MARKS)
                tab = fresh.new_page()
                errors: list[str] = []
                tab.on("pageerror", lambda error: errors.append(str(error)))
                tab.goto(path)
                tab.wait_for_function(
                    "(mark) => window.__marks[mark] !== undefined", arg=mark, timeout=60_000
                )
                marks: dict[str, Any] = tab.evaluate(
                    """() => {
                      const out = Object.assign({}, window.__marks);
                      const nav = performance.getEntriesByType("navigation")[0];
                      out.html = nav.responseEnd;
                      const all = performance.getEntriesByType("resource");
                      const series = all.find((e) => /[/]series[/][^/]+$/.test(e.name));
                      if (series) {
                        out.seriesStart = series.startTime;
                        out.seriesJson = series.responseEnd;
                        out.seriesTtfb = series.responseStart - series.requestStart;
                      }
                      if (out.frameUrl) {
                        const entries = performance.getEntriesByName(out.frameUrl);
                        const entry = entries[0];
                        if (entry) {
                          out.frameRequests = entries.length;
                          out.frameStart = entry.startTime;
                          out.ttfb = entry.responseStart - entry.requestStart;
                          out.serverTiming = entry.serverTiming.map((t) => [t.name, t.duration]);
                        }
                        out.framesInFlight = all.filter(
                          (e) => e.name.indexOf("/frames/") !== -1 && e.startTime <= out.frame
                        ).length;
                      }
                      return out;
                    }"""
                )
                # Let the prefetches finish: left running, they would slow the next round.
                tab.wait_for_load_state("networkidle")
                fresh.close()
                assert not errors, errors
                return marks

            viewer = f"/cases/{case_id}/viewer?series={series_id}"
            case_page = f"/cases/{case_id}"
            ohif = urls.viewer_url(uuid.UUID(case_id), study_uid)
            results: dict[str, list[dict[str, Any]]] = {
                key: []
                for key in (
                    *("viewer cold", "viewer warm", "case cold", "case warm"),
                    *("ohif cold", "ohif warm"),
                )
            }
            started = time.perf_counter()
            for _ in range(options.rounds):
                server.restart()
                results["viewer cold"].append(visit(viewer, "frame"))
                results["viewer warm"].append(visit(viewer, "frame"))
                server.restart()
                results["case cold"].append(visit(case_page, "thumbnail"))
                results["case warm"].append(visit(case_page, "thumbnail"))
                if release is not None:
                    server.restart()
                    results["ohif cold"].append(visit(ohif, "ohif"))
                    results["ohif warm"].append(visit(ohif, "ohif"))
            browser.close()
            print(f"{options.rounds} rounds in {time.perf_counter() - started:.0f} s")
            print("viewer page -> first frame shown (navigation start to #viewer-image load)")
            for state in ("cold", "warm"):
                figures(f"{state}", [m["frame"] for m in results[f"viewer {state}"]])
            for state in ("cold", "warm"):
                figures(
                    f"{state}: frame request TTFB (server answer)",
                    [m["ttfb"] for m in results[f"viewer {state}"] if "ttfb" in m],
                )
            for state in ("cold", "warm"):
                marks = results[f"viewer {state}"]
                parts = "   ".join(
                    f"{name} {statistics.median(m[key] for m in marks if key in m):.0f}"
                    for name, key in (
                        ("HTML", "html"),
                        ("series JSON requested", "seriesStart"),
                        ("answered", "seriesJson"),
                        ("(TTFB", "seriesTtfb"),
                        (") frame requested", "frameStart"),
                    )
                )
                print(f"  {state}, medians in ms since navigation start: {parts}")
                same = sorted({m.get("frameRequests", 0) for m in marks})
                before = sorted({m.get("framesInFlight", 0) for m in marks})
                print(
                    f"  {state}: requests for the shown frame's URL {same}, "
                    f"frame requests started before it loaded {before}"
                )
            timing = [m.get("serverTiming") for m in results["viewer warm"]]
            if any(timing):
                print(f"  Server-Timing of the frame: {timing}")
            else:
                print("  Server-Timing: not sent by the server (skipped)")
            print("case page -> first series thumbnail shown")
            for state in ("cold", "warm"):
                figures(f"{state}", [m["thumbnail"] for m in results[f"case {state}"]])
            print("Open in OHIF -> first image drawn (navigation start to the first render)")
            if release is None:
                print("  OHIF is not installed (portal ohif install): skipped")
            for state in ("cold", "warm") if release is not None else ():
                figures(f"{state}", [m["ohif"] for m in results[f"ohif {state}"]])
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
