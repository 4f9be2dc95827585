"""``python -m bench.case_pages``: p50/p95 of the case page and the coordinator dashboard.

Builds a realistic data set through the real API, in process (FastAPI's test client, real
SeaweedFS, SQLite by default or ``--database-url``): ``--cases`` cases, each with a CT
instance and a PDF, a question from the specialist and the patient's answer, and a draft
opinion. Then it times the specialist's case page (a cold pass with every key cache emptied,
then a warm pass) and the coordinator's dashboard.

It only uses routes and services that exist before and after sealed text columns, so the
same file measures both (run it with ``PYTHONPATH`` pointing at either checkout).
"""

from __future__ import annotations

import argparse
import functools
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyotp
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bench.people import enrolled_staff
from portal import migrate
from portal.accounts.models import Role
from portal.app import create_app
from portal.cases.consent import CURRENT_VERSION
from portal.db import create_db_engine
from portal.settings import Settings
from storage.embedded import PORT_SPAN, EmbeddedS3
from storage.keys import LocalKeyring
from storage.settings import StorageSettings
from tests.portal import samples
from tests.services import free_port_block

PASSWORD = secrets.token_urlsafe(18)  # random per run: nothing to guess or leak
OPINION = {
    "summary": "Single lesion of the T11 body, typical of a hemangioma.",
    "findings": "Coarse vertical trabeculae, 14 mm, no soft-tissue component. " * 8,
    "impression": "Typical vertebral hemangioma without aggressive features.",
    "answers": [{"question": "Does it need treatment?", "answer": "No treatment now."}],
    "recommendations": {"treatment_options": "Observation.", "urgency": "routine"},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--dashboard-requests", type=int, default=40)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-case-pages-") as tmp:
        root = Path(tmp)
        seaweed = EmbeddedS3(
            data_dir=root / "seaweedfs",
            s3_port=free_port_block(PORT_SPAN),
            access_key="bench-access",
            secret_key=secrets.token_urlsafe(24),
            bucket="bench",
        )
        seaweed.start()
        try:
            settings = _settings(
                root, args.database_url or f"sqlite:///{root / 'db.sqlite'}", seaweed
            )
            engine = create_db_engine(settings.database_url)
            migrate.upgrade(engine)
            engine.dispose()
            app = create_app(settings)
            with TestClient(app, base_url="http://bench") as setup:
                run(app, setup, args.cases, args.dashboard_requests)
        finally:
            seaweed.stop()


def run(app: FastAPI, setup: TestClient, cases: int, dashboard_requests: int) -> None:
    specialist, specialist_otp = _staff(app, Role.specialist)
    coordinator, coordinator_otp = _staff(app, Role.coordinator)
    specialist_api = _signed_in(app, specialist, specialist_otp)
    started = time.perf_counter()
    ids = [_case(app, specialist_api, n) for n in range(cases)]
    print(f"data set: {cases} cases in {time.perf_counter() - started:.0f} s")

    pages = _signed_in(app, specialist, specialist_otp)
    board = _signed_in(app, coordinator, coordinator_otp)
    _forget_keys(app)
    cold = [_timed(functools.partial(pages.get, f"/cases/{case_id}")) for case_id in ids]
    warm = [_timed(functools.partial(pages.get, f"/cases/{case_id}")) for case_id in ids]
    _forget_keys(app)
    dash_cold = _timed(lambda: board.get("/cases"))
    dash = [_timed(lambda: board.get("/cases")) for _ in range(dashboard_requests)]
    _report("case page, cold key caches", cold)
    _report("case page, warm", warm)
    print(f"coordinator dashboard ({cases} cases), first after emptying caches: {dash_cold:.1f} ms")
    _report(f"coordinator dashboard ({cases} cases), warm", dash)


def _case(app: FastAPI, specialist: TestClient, n: int) -> str:
    patient = _patient(app)
    body = {
        "subject": f"Spine lesion {n}",
        "body_region": "spine",
        "clinical_question": f"Case {n}: is the T11 lesion a typical hemangioma? " * 4,
        "history": "Back pain for three months, no trauma, no weight loss. " * 6,
    }
    case = _ok(patient.post("/api/cases", json=body))
    url = f"/api/cases/{case['id']}"
    files = [
        ("files", (f"ct-{n}.dcm", samples.ct_series(1)[0], "application/dicom")),
        ("files", (f"report-{n}.pdf", samples.pdf(pages=1), "application/pdf")),
    ]
    _ok(patient.post(f"{url}/files", files=files))
    _ok(patient.post(f"{url}/consent", json={"accepted": True, "version": CURRENT_VERSION}))
    _ok(patient.post(f"{url}/submit"))
    _ok(specialist.post(f"{url}/accept"))
    asked = _ok(specialist.post(f"{url}/questions", json={"text": "Any MRI report? " * 5}))
    answer = {"text": "Attached the MRI report from March. " * 5}
    _ok(patient.post(f"{url}/questions/{asked['id']}/answer", json=answer))
    _ok(specialist.put(f"{url}/opinion", json=OPINION))
    return str(case["id"])


def _patient(app: FastAPI) -> TestClient:
    email = f"p-{secrets.token_hex(5)}@example.org"
    client = TestClient(app, base_url="http://bench")
    body = {"email": email, "password": PASSWORD, "full_name": "Bench Patient"}
    _ok(client.post("/api/auth/register", json=body))
    token = _ok(client.post("/api/auth/login", json={"email": email, "password": PASSWORD}))
    client.headers["Authorization"] = f"Bearer {token['access_token']}"
    client.cookies.clear()
    return client


def _staff(app: FastAPI, role: Role) -> tuple[str, pyotp.TOTP]:
    email = f"{role.value[:2]}-{secrets.token_hex(4)}@example.org"
    profile = {
        "specialties": ["spine_surgery"],
        "body_regions": ["spine"],
        "modalities": ["CT", "MR"],
        "languages": ["en"],
        "max_active_cases": 200,
    }
    _, secret = enrolled_staff(
        engine=app.state.engine,
        settings=app.state.settings,
        role=role,
        email=email,
        password=PASSWORD,
        full_name=f"Bench {role.value}",
        profile=profile if role == Role.specialist else None,
    )
    return email, pyotp.TOTP(secret)


_USED_STEPS: set[tuple[str, int]] = set()


def _signed_in(app: FastAPI, email: str, code: pyotp.TOTP) -> TestClient:
    """A client with the session cookie (pages) and the bearer token (API)."""
    while (email, step := int(time.time() // 30)) in _USED_STEPS:
        time.sleep(1)  # codes are single-use per 30-second step
    _USED_STEPS.add((email, step))
    client = TestClient(app, base_url="http://bench")
    body = {"email": email, "password": PASSWORD, "otp": code.at(step * 30)}
    token = _ok(client.post("/api/auth/login", json=body))
    client.headers["Authorization"] = f"Bearer {token['access_token']}"
    return client


def _forget_keys(app: FastAPI) -> None:
    """Empty the vault's key caches, as after a restart (text keys exist only when sealed)."""
    vault = app.state.vault
    for cache in (vault.cache, getattr(vault, "text_keys", None)):
        if cache is not None:
            cache.clear()


def _timed(request: Callable[[], Any]) -> float:
    started = time.perf_counter()
    response = request()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"page answered {response.status_code}")
    return elapsed


def _report(label: str, samples_ms: list[float]) -> None:
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]
    print(f"{label}: p50 {statistics.median(ordered):.1f} ms, p95 {p95:.1f} ms (n={len(ordered)})")


def _ok(response: Any) -> Any:
    if response.status_code >= 300:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:200]}"
        )
    return response.json()


def _settings(root: Path, database_url: str, seaweed: EmbeddedS3) -> Settings:
    keyring = root / "keyring.json"
    LocalKeyring.ensure(keyring)
    storage = StorageSettings(
        endpoint_url=seaweed.endpoint_url,
        access_key_id=seaweed.access_key,
        secret_access_key=seaweed.secret_key,
        bucket=seaweed.bucket,
        keyring_path=keyring,
        embedded=False,
    )
    return Settings(
        environment="test",
        data_dir=root,
        database_url=database_url,
        secret_key=secrets.token_urlsafe(32),
        argon2_time_cost=1,
        argon2_memory_kib=8192,
        argon2_parallelism=1,
        storage=storage,
        sweep_enabled=False,
    )


if __name__ == "__main__":
    main()
