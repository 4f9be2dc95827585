"""A hostile photo or PDF can at worst fail its own request.

Records are measured and drawn in worker processes with a memory and a time limit
(``portal.records.pool``); intake refuses photos with more pixels than a paper report needs.
The files are made here: a solid-colour 13000 x 13000 PNG is half a megabyte on disk and
half a gigabyte decoded; a one-page PDF of 20,000 overlapping triangles takes PDFium seconds.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from portal.audit.service import AuditContext
from portal.cases.models import Case
from portal.intake.models import CaseFile
from portal.intake.pipeline import Ingest
from portal.objects.texts import bind_vault
from portal.records import worker
from portal.records.pool import RecordTooComplex, RenderLimits, RenderPool, RenderTimedOut
from portal.settings import Settings
from storage.embedded import EmbeddedS3
from tests.fixtures.app import Account, Accounts, file_objects, make_settings, open_case
from tests.portal import samples
from tests.portal.test_pages import browser_sign_in, check_page
from tests.portal.test_records import decoded, page_of, record_of, report_pdf, upload

HOSTILE_SIDE = 13_000
"""169 megapixels: over intake's new limit, under the old one (200 M) and under Pillow's own
decompression-bomb error (179 M), so before this change it was accepted and decoded whole."""
PARENT_GROWTH_LIMIT = 80 * 1024 * 1024


@functools.cache
def slow_pdf(triangles: int = 20_000) -> bytes:
    """One A4 page filled with large overlapping triangles: PDFium needs seconds to draw it."""
    operations = b"".join(
        b"%d %d m %d %d l %d 0 l h f\n"
        % (i % 600, i % 800, (i * 7) % 600, (i * 13) % 800, (i * 3) % 600)
        for i in range(triangles)
    )
    content = zlib.compress(operations)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content)
        + content
        + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def memory_status(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak) of this process, where the app runs."""
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} in /proc/self/status")


def reset_peak_memory() -> None:
    """Start measuring this process's peak resident memory afresh (Linux: ``clear_refs`` 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def store_bypassing_intake(app: FastAPI, case_id: str, who: Account, name: str, data: bytes) -> str:
    """Store a photo through the real ingest path and vault, as if accepted before the limit."""
    settings: Settings = app.state.settings
    lenient = settings.model_copy(update={"record_max_pixels": 400_000_000})
    with bind_vault(Session(app.state.engine, expire_on_commit=False), app.state.vault) as session:
        case = session.get(Case, uuid.UUID(case_id))
        assert case is not None
        ingest = Ingest(
            session=session,
            vault=app.state.vault,
            settings=lenient,
            ctx=AuditContext(who.user_id, who.role.value),
            case=case,
            uploader_id=who.user_id,
        )
        ingest.add(filename=name, chunks=[data], source="upload")
    assert ingest.result.rejected == [], ingest.result.rejected
    return str(ingest.result.accepted[0].id)


@pytest.fixture
def limits() -> dict[str, Any]:
    """Settings a test changes (parametrize ``limits`` to change them)."""
    return {}


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, seaweed: EmbeddedS3, limits: dict[str, Any]
) -> Settings:
    return make_settings(tmp_path, database_url, seaweed, **limits)


@pytest.fixture
def patient(accounts: Accounts) -> Account:
    return accounts.patient()


@pytest.fixture
def case(client: TestClient, patient: Account) -> dict[str, Any]:
    return open_case(client, patient)


# Intake ------------------------------------------------------------------------------------


def test_intake_refuses_a_photo_with_more_pixels_than_a_report_needs(
    client: TestClient, patient: Account, case: dict[str, Any], db: Session
):
    hostile = samples.solid_png(HOSTILE_SIDE, HOSTILE_SIDE)
    assert len(hostile) < 1024 * 1024
    response = client.post(
        f"/api/cases/{case['id']}/files",
        files=[("files", ("scan.png", hostile, "application/octet-stream"))],
        headers=patient.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == []
    (rejected,) = response.json()["rejected"]
    assert rejected["filename"] == "scan.png"
    assert "too many pixels" in rejected["reason"]
    assert "more than 50 megapixels" in rejected["reason"]
    case_id = uuid.UUID(case["id"])
    assert db.exec(select(CaseFile).where(CaseFile.case_id == case_id)).all() == []
    assert [o for o in file_objects(db) if o.case_id == case_id] == []
    db.commit()
    # A photo of a page at a usual phone resolution is still accepted.
    upload(client, patient, case["id"], "page.jpg", samples.jpeg(4000, 3000))


# Oversized photos already stored -----------------------------------------------------------


def test_an_oversized_photo_already_stored_fails_alone_while_others_render(
    client: TestClient, app: FastAPI, patient: Account, case: dict[str, Any]
):
    hostile_id = store_bypassing_intake(
        app, case["id"], patient, "old scan.png", samples.solid_png(HOSTILE_SIDE, HOSTILE_SIDE)
    )
    normal_id = upload(client, patient, case["id"], "report.pdf", report_pdf(2))

    def hostile(_: int) -> Any:
        return page_of(client, patient, case["id"], hostile_id, 1)

    def normal(number: int) -> Any:
        return page_of(client, patient, case["id"], normal_id, 1 + number % 2, width=600 + number)

    with ThreadPoolExecutor(4) as threads:
        refused = [threads.submit(hostile, n) for n in range(3)]
        shown = [threads.submit(normal, n) for n in range(6)]
        for future in refused:
            response = future.result()
            assert response.status_code == 415
            assert response.json() == {
                "detail": "This photo has too many pixels to show here. Download the original."
            }
        for number, future in enumerate(shown):
            response = future.result()
            assert response.status_code == 200
            assert decoded(response.content).width == 600 + number
    view = record_of(client, patient, case["id"], hostile_id).json()
    assert view["pages"] == [] and "too many pixels" in view["problem"]
    browser_sign_in(client, patient)
    page = client.get(f"/cases/{case['id']}/records/{hostile_id}")
    assert page.status_code == 200 and "too many pixels to show here" in page.text
    check_page(page)


@pytest.mark.parametrize(
    "limits", [{"record_max_pixels": 400_000_000, "record_render_memory_mb": 400}]
)
def test_a_photo_past_the_worker_memory_limit_fails_alone_and_the_server_stays_small(
    client: TestClient, app: FastAPI, patient: Account, case: dict[str, Any]
):
    """With the pixel check out of the way, only the worker's memory limit stands between a
    169-megapixel PNG (half a gigabyte decoded) and the server: it must be enough."""
    hostile_id = upload(
        client, patient, case["id"], "scan.png", samples.solid_png(HOSTILE_SIDE, HOSTILE_SIDE)
    )
    normal_id = upload(client, patient, case["id"], "photo.png", samples.png(900, 600))
    assert page_of(client, patient, case["id"], normal_id, 1).status_code == 200  # warm
    before = memory_status("VmRSS")
    reset_peak_memory()
    for _ in range(3):
        response = page_of(client, patient, case["id"], hostile_id, 1, width=1200)
        assert response.status_code == 415, response.text
        assert response.json() == {"detail": RecordTooComplex.default_message}
        after_each = page_of(client, patient, case["id"], normal_id, 1, width=300)
        assert after_each.status_code == 200 and decoded(after_each.content).width == 300
    growth, peak = memory_status("VmRSS") - before, memory_status("VmHWM") - before
    assert growth < PARENT_GROWTH_LIMIT, f"the server grew by {growth / 2**20:.0f} MiB"
    assert peak < PARENT_GROWTH_LIMIT, f"the server's peak was {peak / 2**20:.0f} MiB higher"


@pytest.mark.parametrize("limits", [{"record_render_max_mb": 1}])
def test_an_original_larger_than_a_worker_is_given_is_offered_for_download_only(
    client: TestClient, patient: Account, case: dict[str, Any]
):
    large = b"%PDF-1.7\n%" + b"x" * (1024 * 1024) + b"\n%%EOF\n"
    file_id = upload(client, patient, case["id"], "bundle.pdf", large)
    view = record_of(client, patient, case["id"], file_id)
    assert view.status_code == 200 and view.json()["pages"] == []
    assert "larger than 1 MB, too large to show here" in view.json()["problem"]
    response = page_of(client, patient, case["id"], file_id, 1)
    assert response.status_code == 415 and "larger than 1 MB" in response.json()["detail"]
    original = client.get(
        f"/api/cases/{case['id']}/files/{file_id}/content", headers=patient.headers
    )
    assert original.content == large


# Time limit --------------------------------------------------------------------------------


@pytest.mark.parametrize("limits", [{"record_render_seconds": 1.0}])
def test_a_page_past_the_time_limit_is_stopped_and_the_next_render_works(
    client: TestClient, patient: Account, case: dict[str, Any]
):
    slow_id = upload(client, patient, case["id"], "slow.pdf", slow_pdf())
    normal_id = upload(client, patient, case["id"], "report.pdf", report_pdf(1))
    assert record_of(client, patient, case["id"], slow_id).json()["page_count"] == 1
    started = time.monotonic()
    response = page_of(client, patient, case["id"], slow_id, 1)
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json() == {"detail": RenderTimedOut.default_message}
    assert elapsed < 4.0, f"stopped only after {elapsed:.1f} s"  # drawing it takes 6 s or more
    for width in (400, 500, 600):  # more renders than workers: the killed one was replaced
        after = page_of(client, patient, case["id"], normal_id, 1, width=width)
        assert after.status_code == 200 and decoded(after.content).width == width


# The pool on its own -----------------------------------------------------------------------


@pytest.fixture
def pool() -> Iterator[RenderPool]:
    limits = RenderLimits(
        workers=1,
        memory_bytes=512 * 1024 * 1024,
        seconds=1.0,
        max_pixels=400_000_000,
        max_bytes=64 * 1024 * 1024,
    )
    renderer = RenderPool(limits)
    try:
        yield renderer
    finally:
        renderer.close()


def test_one_worker_recovers_from_a_timeout_and_from_memory_exhaustion(pool: RenderPool):
    normal = pool.draw(kind="png", data=samples.png(300, 200), page=1, width=200)
    assert (normal.width, normal.height) == (200, 133)
    with pytest.raises(RenderTimedOut):
        pool.draw(kind="pdf", data=slow_pdf(), page=1, width=1200)
    with pytest.raises(RecordTooComplex):
        pool.draw(
            kind="png", data=samples.solid_png(HOSTILE_SIDE, HOSTILE_SIDE), page=1, width=1200
        )
    assert pool.draw(kind="png", data=samples.png(300, 200), page=1, width=200) == normal


def test_a_48_megapixel_transparent_png_fits_a_worker_of_the_default_size():
    """Decoded, 8000 x 6000 RGBA is 192 MB; it is reduced, then flattened onto white in place.
    Flattening at full size first (four full-size copies) needed more than the default 1 GiB."""
    defaults = Settings.model_fields
    limits = RenderLimits(
        workers=1,
        memory_bytes=defaults["record_render_memory_mb"].default * 1024 * 1024,
        seconds=60,
        max_pixels=defaults["record_max_pixels"].default,
        max_bytes=defaults["record_render_max_mb"].default * 1024 * 1024,
    )
    pool = RenderPool(limits)
    try:
        photo = pool.draw(
            kind="png", data=samples.solid_png(8000, 6000, (200, 30, 30, 128)), page=1, width=2000
        )
    finally:
        pool.close()
    image = decoded(photo.data)
    assert image.mode == "RGB" and image.size == (photo.width, photo.height) == (2000, 1500)
    red, green, blue = image.getpixel((1000, 750))  # half-transparent red over white
    assert abs(red - 227) <= 1 and abs(green - 142) <= 1 and abs(blue - 142) <= 1


def test_a_worker_that_dies_fails_only_its_own_render_and_is_replaced():
    pool = RenderPool(
        RenderLimits(workers=1, memory_bytes=2**30, seconds=30, max_pixels=10**8, max_bytes=2**26)
    )
    try:
        pid = pool.warm()
        with ThreadPoolExecutor(1) as threads:
            drawing = threads.submit(pool.draw, kind="pdf", data=slow_pdf(), page=1, width=1200)
            time.sleep(1.0)  # the page takes seconds to draw: the worker is busy with it
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(RecordTooComplex):
                drawing.result(timeout=30)
        assert pool.warm() != pid
        page = pool.draw(kind="pdf", data=report_pdf(1), page=1, width=300)
        assert decoded(page.data).width == 300
    finally:
        pool.close()


WORKER_ENVIRONMENT = """
import json, sys
from portal.records.pool import RenderLimits, RenderPool
pool = RenderPool(RenderLimits(workers=1, memory_bytes=2**30, seconds=10, max_pixels=10**6,
                               max_bytes=2**20))
pid = pool.warm()
with open(f"/proc/{pid}/environ", "rb") as raw:
    names = [item.split(b"=", 1)[0].decode() for item in raw.read().split(b"\\0") if item]
pool.close()
print(json.dumps(names))
"""


def test_workers_are_started_without_the_servers_secrets(tmp_path: Path):
    """The fork server, and so every worker, starts from an environment without secrets:
    checked in a new interpreter, whose fork server is started by the pool."""
    environment = dict(os.environ) | {
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "PORTAL_SECRET_KEY": "not-for-workers-" + "x" * 32,
        "PORTAL_STORAGE_SECRET_ACCESS_KEY": "not-for-workers",
        "AWS_SECRET_ACCESS_KEY": "not-for-workers",
    }
    result = subprocess.run(
        [sys.executable, "-c", WORKER_ENVIRONMENT],
        env=environment,
        capture_output=True,
        check=True,
        timeout=60,
        cwd=tmp_path,
    )
    names = json.loads(result.stdout)
    assert "PYTHONPATH" in names and "OPENBLAS_NUM_THREADS" in names
    assert not [name for name in names if name.startswith(("PORTAL_", "AWS_"))], names
    assert set(names) <= worker.KEPT_ENVIRONMENT | set(worker.QUIET_THREADS)
    assert (
        worker.worker_environment({"PORTAL_SECRET_KEY": "k", "PATH": "/bin"})
        == {"PATH": "/bin"} | worker.QUIET_THREADS
    )
