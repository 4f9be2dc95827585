"""``python -m bench.lists``: p50/p95 of the lists at scale (dashboard, case list, case files).

Fills a throwaway PostgreSQL (started like the tests' one, or ``--database-url``) with
``--cases`` cases spread over patients, statuses and ``--specialists`` specialists, and
``--instances`` indexed DICOM instances (files, series and instances rows), by bulk inserts
(``tests/fixtures/bulk.py``: no objects in storage; these rows are listed, never opened). Then it
times the coordinator's dashboard, the first page of ``GET /api/cases`` for the coordinator and
``GET /api/cases/{id}/files`` of a case with ``--files`` files, in process (FastAPI's test
client, real SeaweedFS for the app's start-up).

It only uses routes and fixtures that exist before and after keyset pagination, so the same
file measures both (copy it and ``tests/fixtures/bulk.py`` into the other checkout, and run it
with ``PYTHONPATH`` pointing there). Results: docs/scale.md, "Lists".
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bench.case_pages import _ok, _patient, _report, _settings, _signed_in, _staff, _timed
from portal import migrate
from portal.accounts.models import Role, User
from portal.app import create_app
from portal.db import create_db_engine, utcnow
from storage.embedded import PORT_SPAN, EmbeddedS3
from tests.fixtures.bulk import insert_cases, insert_images
from tests.services import free_port_block, postgres_server

_HOUR = timedelta(hours=1)
# Where 10,000 cases stand: most are done, a fifth are with a specialist, a few wait in triage.
STATUS_SHARE = {
    "closed": 0.45,
    "opinion_delivered": 0.2,
    "in_review": 0.2,
    "draft": 0.1,
    "triage": 0.01,
    "cancelled": 0.04,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--specialists", type=int, default=50)
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--files", type=int, default=1000, help="files of the measured case")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--database-url", default=None, help="default: a throwaway PostgreSQL")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-lists-") as tmp:
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
            if args.database_url:
                _measure(root, args.database_url, seaweed, args)
            else:
                with postgres_server() as server:
                    admin = sa.create_engine(server.admin_url(), isolation_level="AUTOCOMMIT")
                    with admin.connect() as connection:
                        connection.execute(sa.text("CREATE DATABASE bench_lists"))
                    admin.dispose()
                    _measure(root, server.url("bench_lists"), seaweed, args)
        finally:
            seaweed.stop()


def _measure(root: Path, database_url: str, seaweed: EmbeddedS3, args: argparse.Namespace) -> None:
    settings = _settings(root, database_url, seaweed)
    engine = create_db_engine(settings.database_url)
    migrate.upgrade(engine)
    engine.dispose()
    app = create_app(settings)
    with TestClient(app, base_url="http://bench"):
        _run(app, args)


def _run(app: FastAPI, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    team = [_staff(app, Role.specialist) for _ in range(args.specialists)]
    coordinator = _staff(app, Role.coordinator)
    patients = [_patient(app) for _ in range(args.patients)]
    patient_ids = [_ok(patient.get("/api/me"))["id"] for patient in patients]
    specialist_ids = _user_ids(app, [email for email, _ in team])
    owner = patients[0]
    body = {"subject": "Spine lesion", "body_region": "spine", "clinical_question": "Is it?" * 3}
    measured = _ok(owner.post("/api/cases", json=body))["id"]  # with keys: its files are named
    with app.state.engine.begin() as connection:
        case_ids = _fill_cases(connection, args.cases, patient_ids, specialist_ids)
        insert_images(
            connection,
            case_id=_uuid(measured),
            uploader_id=_uuid(patient_ids[0]),
            instances=args.files,
        )
        per_case, left = 1000, args.instances - args.files
        for case_id in case_ids:
            if left <= 0:
                break
            insert_images(
                connection,
                case_id=case_id,
                uploader_id=_uuid(patient_ids[0]),
                instances=min(per_case, left),
            )
            left -= per_case
    with app.state.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("ANALYZE"))
            connection.commit()
    print(
        f"data set: {args.cases} cases, {args.instances} instances, {args.specialists} "
        f"specialists on {app.state.engine.dialect.name} in {time.perf_counter() - started:.0f} s"
    )
    board = _signed_in(app, *coordinator)
    for warm_up in ("/cases", "/api/cases"):  # the first request of a client signs things in
        board.get(warm_up)
    owner.get(f"/api/cases/{measured}/files")
    dashboard = [_timed(lambda: board.get("/cases")) for _ in range(args.requests)]
    listed = [_timed(lambda: board.get("/api/cases")) for _ in range(args.requests)]
    files = [
        _timed(lambda: owner.get(f"/api/cases/{measured}/files")) for _ in range(args.requests)
    ]
    print("dashboard, every request (ms):", " ".join(f"{ms:.0f}" for ms in dashboard))
    _report(f"coordinator dashboard ({args.cases} cases)", dashboard)
    _report("GET /api/cases, coordinator, first page", listed)
    _report(f"GET /api/cases/{{id}}/files ({args.files} files), first page", files)


def _fill_cases(
    connection: sa.Connection, total: int, patients: list[str], team: list[str]
) -> list[uuid.UUID]:
    made: list[uuid.UUID] = []
    now = utcnow()
    for index, (status, share) in enumerate(STATUS_SHARE.items()):
        count = max(1, round(total * share))
        for number, patient in enumerate(patients):
            part = count // len(patients) + (1 if number < count % len(patients) else 0)
            if part == 0:
                continue
            busy = status in {"in_review", "closed", "opinion_delivered"}
            made += insert_cases(
                connection,
                patient_id=_uuid(patient),
                count=part,
                status=status,
                specialist_id=_uuid(team[(index + number) % len(team)]) if busy else None,
                due_at=now + (number - 5) * _HOUR if status == "in_review" else None,
                created_at=now - (index * len(patients) + number) * _HOUR,
            )
    return made


def _user_ids(app: FastAPI, emails: list[str]) -> list[str]:
    with Session(app.state.engine) as session:
        rows = session.exec(select(User.id, User.email).where(User.role == Role.specialist)).all()
    by_email = {email: str(user_id) for user_id, email in rows}
    return [by_email[email] for email in emails]


def _uuid(value: str) -> uuid.UUID:
    return uuid.UUID(value)


if __name__ == "__main__":
    main()
