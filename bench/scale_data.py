"""A large data set for the scale benchmark: thousands of cases in every status, many
specialists, and a million indexed DICOM instances, on PostgreSQL.

Accounts and cases go through the real services (in process), so every case has its own
data key, key share and sealed text, exactly as the portal makes them. The DICOM index is
bulk-loaded with ``COPY``: study, series, instance, file and stored-object rows, with file names
sealed under the case's key. Objects exist only for a sample (``real_cases``), which went through
the HTTP API end to end; the other rows describe objects that were never written, so the
benchmark never reads their bytes (``portal storage scrub`` would report them missing).
"""

from __future__ import annotations

import hashlib
import random
import secrets
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pyotp
from fastapi import FastAPI
from sqlalchemy import text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bench.people import enrolled_staff
from portal.access import Principal
from portal.accounts import service as accounts_service
from portal.accounts.models import Role, User, UserCreate
from portal.audit.service import AuditContext
from portal.cases import service as cases_service
from portal.cases.deadlines import DeadlineState, deadline_state
from portal.cases.models import BodyRegion, Case, CaseCreate, CaseStatus, Priority
from portal.db import utcnow
from portal.objects import texts
from reviewers.vocabulary import Specialty

PASSWORD = secrets.token_urlsafe(18)  # random per run: nothing to guess or leak

# Share of cases per status (the rest are drafts); open work carries a specialist and a due date.
STATUS_SHARES = {
    CaseStatus.submitted: 0.03,
    CaseStatus.triage: 0.04,
    CaseStatus.assigned: 0.10,
    CaseStatus.in_review: 0.25,
    CaseStatus.info_requested: 0.05,
    CaseStatus.opinion_delivered: 0.20,
    CaseStatus.closed: 0.15,
    CaseStatus.cancelled: 0.05,
}
WITH_SPECIALIST = {
    CaseStatus.assigned,
    CaseStatus.in_review,
    CaseStatus.info_requested,
    CaseStatus.opinion_delivered,
    CaseStatus.closed,
}
REGIONS = [
    BodyRegion.spine,
    BodyRegion.head,
    BodyRegion.chest,
    BodyRegion.abdomen,
    BodyRegion.pelvis,
]
MODALITIES = ["CT", "MR", "CR"]
CT_IMAGE, EXPLICIT_LE = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1"


@dataclass(frozen=True)
class Staff:
    email: str
    secret: str
    user_id: uuid.UUID

    def code(self, step: int) -> str:
        return pyotp.TOTP(self.secret).at(step * 30)


@dataclass
class Dataset:
    cases: list[uuid.UUID] = field(default_factory=list)
    patients: dict[uuid.UUID, str] = field(default_factory=dict)
    """Patient id → e-mail (all share :data:`PASSWORD`)."""
    owners: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    """Case id → patient id."""
    specialists: list[Staff] = field(default_factory=list)
    coordinators: list[Staff] = field(default_factory=list)
    instances: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def staff(app: FastAPI, role: Role, n: int, rng: random.Random) -> Staff:
    email = f"{role.value[:4]}-{n}-{secrets.token_hex(3)}@example.org"
    profile = {
        "specialties": rng.sample(list(Specialty), 2),
        "body_regions": [r.value for r in rng.sample(REGIONS, 3)],
        "modalities": MODALITIES,
        "languages": rng.choice([["en"], ["en", "ru"], ["ru"], ["en", "de"]]),
        "max_active_cases": 200,
    }
    user_id, secret = enrolled_staff(
        engine=app.state.engine,
        settings=app.state.settings,
        role=role,
        email=email,
        password=PASSWORD,
        full_name=f"Scale {role.value} {n}",
        profile=profile if role == Role.specialist else None,
    )
    return Staff(email, secret, user_id)


def fill(
    app: FastAPI,
    *,
    cases: int,
    specialists_count: int,
    instances: int,
    patients_per_case: float = 0.1,
    workers: int = 4,
    seed: int = 13,
) -> Dataset:
    """Accounts, cases (statuses spread), and ``instances`` indexed instances over the cases."""
    rng = random.Random(seed)
    data = Dataset()
    started = time.perf_counter()
    data.specialists = [staff(app, Role.specialist, n, rng) for n in range(specialists_count)]
    data.coordinators = [staff(app, Role.coordinator, n, rng) for n in range(60)]
    data.seconds["staff"] = time.perf_counter() - started

    started = time.perf_counter()
    patient_count = max(1, int(cases * patients_per_case))
    with ThreadPoolExecutor(workers) as pool:
        made = list(pool.map(lambda n: _patient(app, n), range(patient_count)))
    data.patients = dict(made)
    owners = [made[n % patient_count][0] for n in range(cases)]
    per_case = instances // cases
    with ThreadPoolExecutor(workers) as pool:
        batches = [owners[n : n + 50] for n in range(0, cases, 50)]
        for done in pool.map(lambda batch: _cases(app, batch, per_case, rng.random()), batches):
            for case_id, owner, count in done:
                data.cases.append(case_id)
                data.owners[case_id] = owner
                data.instances += count
    data.seconds["cases and index"] = time.perf_counter() - started

    started = time.perf_counter()
    _spread_statuses(app.state.engine, data, rng, due_soon_hours=app.state.settings.due_soon_hours)
    data.seconds["statuses"] = time.perf_counter() - started

    started = time.perf_counter()
    _settle(app.state.engine)
    data.seconds["vacuum"] = time.perf_counter() - started
    return data


def _settle(engine: Engine) -> None:
    """``VACUUM ANALYZE`` after the bulk load, as an operator would (and autovacuum would, some
    minutes later): without it, statistics are stale and the visibility map is empty, so an
    index-only count still visits thousands of heap pages (3.5 ms against 1.1 ms for the
    specialists' load on 10,000 cases)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))


def _patient(app: FastAPI, n: int) -> tuple[uuid.UUID, str]:
    email = f"pat-{n}-{secrets.token_hex(3)}@example.org"
    with Session(app.state.engine) as session:
        user = accounts_service.create_user(
            session=session,
            settings=app.state.settings,
            role=Role.patient,
            data=UserCreate(email=email, password=PASSWORD, full_name=f"Scale Patient {n}"),
        )
        session.commit()
        return user.id, email


def _cases(
    app: FastAPI, owners: list[uuid.UUID], per_case: int, salt: float
) -> list[tuple[uuid.UUID, uuid.UUID, int]]:
    """Open one case per owner and bulk-load its index rows; (case, owner, instances) each."""
    rng = random.Random(salt)
    done: list[tuple[uuid.UUID, uuid.UUID, int]] = []
    rows = _Rows()
    with Session(app.state.engine, expire_on_commit=False) as session:
        texts.bind_vault(session, app.state.vault)
        for owner in owners:
            patient = session.get(User, owner)
            assert patient is not None
            case = cases_service.open_case(
                session=session,
                principal=Principal(owner, Role.patient),
                ctx=AuditContext(actor_id=owner, actor_role="patient"),
                patient=patient,
                data=CaseCreate(
                    subject=f"Lesion review {rng.randrange(10_000)}",
                    body_region=rng.choice(REGIONS),
                    clinical_question="Is the lesion benign, and does it need treatment? " * 3,
                    history="Back pain for three months, no trauma. " * 4,
                    priority=Priority.urgent if rng.random() < 0.2 else Priority.standard,
                ),
            )
            sealer = texts.for_case(session=session, case_id=case.id)
            rows.add_case(case.id, owner, per_case, sealer, rng)
            done.append((case.id, owner, per_case))
        session.commit()
    rows.copy(app.state.engine)
    return done


class _Rows:
    """Rows of the DICOM index for many cases, written with one ``COPY`` per table."""

    def __init__(self) -> None:
        self.tables: dict[str, list[tuple[Any, ...]]] = {
            "stored_objects": [],
            "case_files": [],
            "dicom_studies": [],
            "dicom_series": [],
            "dicom_instances": [],
        }

    def add_case(
        self,
        case_id: uuid.UUID,
        owner: uuid.UUID,
        count: int,
        sealer: texts.CaseTexts,
        rng: random.Random,
    ) -> None:
        now = utcnow()
        study = uuid.uuid4()
        study_uid = f"2.25.{uuid.uuid4().int}"
        series_count = rng.randint(2, 4)
        modality = rng.choice(MODALITIES)
        self.tables["dicom_studies"].append(
            (study, case_id, study_uid, "20260115", "Spine study", modality)
        )
        series_ids = [uuid.uuid4() for _ in range(series_count)]
        for number, series in enumerate(series_ids, start=1):
            self.tables["dicom_series"].append(
                (series, study, f"2.25.{uuid.uuid4().int}", modality, "SPINE", number)
            )
        for n in range(count):
            stored, file_id = uuid.uuid4(), uuid.uuid4()
            sop_uid = f"2.25.{uuid.uuid4().int}"
            digest = hashlib.sha256(sop_uid.encode()).hexdigest()
            self.tables["stored_objects"].append(
                (stored, case_id, f"cases/{case_id}/{stored}", 524_288, 524_416, digest, now)
            )
            row = _Named(file_id)
            sealer.seal(row, "filename", f"IM{n:05d}.dcm")
            self.tables["case_files"].append(
                (file_id, case_id, stored, row.filename_sealed, "dicom", 524_288, digest,
                 "upload", owner, now, sop_uid)
            )  # fmt: skip
            series = series_ids[n % series_count]
            self.tables["dicom_instances"].append(
                (uuid.uuid4(), series, file_id, CT_IMAGE, sop_uid, n // series_count + 1,
                 EXPLICIT_LE, 512, 512, 16, 1, 1_400, 1, True)
            )  # fmt: skip

    def copy(self, engine: Engine) -> None:
        columns = {
            "stored_objects": "id, case_id, object_key, size, stored_size, sha256, created_at",
            "case_files": "id, case_id, stored_object_id, filename_sealed, kind, size, sha256, "
            "source, uploaded_by, created_at, sop_instance_uid",
            "dicom_studies": "id, case_id, study_instance_uid, study_date, description, modalities",
            "dicom_series": "id, study_id, series_instance_uid, modality, body_part_examined, "
            "series_number",
            "dicom_instances": "id, series_id, file_id, sop_class_uid, sop_instance_uid, "
            "instance_number, transfer_syntax_uid, rows, columns, bits_allocated, "
            "samples_per_pixel, pixel_data_offset, number_of_frames, frames_declared",
        }
        raw = engine.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
            for table, names in columns.items():
                with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for values in self.tables[table]:
                        copy.write_row(values)
            raw.commit()
        finally:
            raw.close()
        for rows in self.tables.values():
            rows.clear()


@dataclass
class _Named:
    """Stands in for a ``case_files`` row while its name is sealed (the binding needs the id)."""

    id: uuid.UUID
    filename_sealed: bytes | None = None
    __tablename__ = "case_files"


def _spread_statuses(
    engine: Engine, data: Dataset, rng: random.Random, *, due_soon_hours: int
) -> None:
    """Statuses, specialists and due dates as a working service has them (some overdue).

    The data set is a service in its steady state: a running sweep has already sent the
    deadline warnings that its due dates call for, so the sweep during the load only warns
    the cases that cross a threshold meanwhile (a backlog of warnings is its own figure,
    docs/scale.md).
    """
    order = list(data.cases)
    rng.shuffle(order)
    now = utcnow()
    position = 0
    with Session(engine) as session:
        for status, share in STATUS_SHARES.items():
            chosen = order[position : position + int(share * len(order))]
            position += len(chosen)
            for chunk in _chunks(chosen, 500):
                for case_id in chunk:
                    values: dict[str, Any] = {"status": status, "submitted_at": now}
                    if status in WITH_SPECIALIST:
                        values["assigned_specialist_id"] = rng.choice(data.specialists).user_id
                    if status in {CaseStatus.assigned, CaseStatus.in_review, CaseStatus.triage}:
                        values["due_at"] = now + timedelta(hours=rng.uniform(-48, 240))
                        state = deadline_state(values["due_at"], now, due_soon_hours=due_soon_hours)
                        if state in {DeadlineState.due_soon, DeadlineState.overdue}:
                            values["deadline_notice"] = state.value
                    session.execute(update(Case).where(Case.id == case_id).values(**values))  # type: ignore[arg-type]
            session.commit()


def _chunks(items: list[uuid.UUID], size: int) -> Iterator[list[uuid.UUID]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def describe(data: Dataset) -> str:
    timings = ", ".join(f"{what} {seconds:.0f} s" for what, seconds in data.seconds.items())
    return (
        f"{len(data.cases):,} cases, {len(data.patients):,} patients, "
        f"{len(data.specialists)} specialists, {len(data.coordinators)} coordinators, "
        f"{data.instances:,} indexed instances ({timings})"
    )
