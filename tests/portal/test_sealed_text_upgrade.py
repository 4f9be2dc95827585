"""Upgrading a database that holds free text in clear: migration 0006 sets it aside and drops
the clear columns, the portal seals it at start-up. SQLite and PostgreSQL, real SeaweedFS."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from portal import migrate
from portal.access import Principal
from portal.accounts.models import Role
from portal.app import create_app
from portal.cases import service as cases_service
from portal.cases.models import Case, CaseEvent
from portal.db import create_db_engine
from portal.intake.models import CaseFile
from portal.objects import texts
from portal.objects.models import PendingText
from reviewers import opinions
from reviewers.models import CaseAssignment, CaseQuestion, Opinion, OpinionAddendum
from storage.embedded import EmbeddedS3
from tests.fixtures.app import BACKENDS, make_settings
from tests.services import PostgresServer

NOW = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
CLEAR = {
    "question": "UPGRADE-QUESTION: is the lesion at T11 a hemangioma?",
    "history": "UPGRADE-HISTORY: back pain",
    "note": "UPGRADE-NOTE: withdrawn by the patient",
    "asked": "UPGRADE-ASKED: any MRI?",
    "answer": "UPGRADE-ANSWER: attached",
    "impression": "UPGRADE-IMPRESSION: typical hemangioma",
    "canonical": '{"content":"UPGRADE-CANONICAL"}',
    "addendum": "UPGRADE-ADDENDUM: no sports limits",
    "filename": "UPGRADE-FILENAME.pdf",
    "reason": "UPGRADE-REASON: away that week",
}


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    postgres: PostgresServer = request.getfixturevalue("postgres")
    name = f"u_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres.admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres.url(name)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def insert(connection: sa.Connection, name: str, **values: Any) -> None:
    """Insert a row as the 0005 schema has it, filling required columns we do not care about."""
    table = sa.Table(name, sa.MetaData(), autoload_with=connection)
    for column in table.columns:
        if column.name in values or column.nullable or column.server_default is not None:
            continue
        values[column.name] = _filler(column)
    if connection.dialect.name == "sqlite":  # reflected as CHAR(32): what sa.Uuid stores
        values = {k: v.hex if isinstance(v, uuid.UUID) else v for k, v in values.items()}
    connection.execute(table.insert().values(**values))


def _filler(column: sa.Column[Any]) -> Any:
    kind = column.type.python_type if not isinstance(column.type, sa.Uuid) else uuid.UUID
    if kind is bool:
        return False
    if kind is int:
        return 0
    if kind is float:
        return 0.0
    if kind is uuid.UUID:
        return uuid.uuid4()
    if kind is datetime:
        return NOW.replace(tzinfo=None)
    if kind in (dict, list):
        return [] if kind is list else {}
    return "x"


def old_rows(engine: sa.Engine) -> dict[str, uuid.UUID]:
    ids = {name: uuid.uuid4() for name in ("user", "case", "question", "opinion", "addendum")}
    ids |= {"file": uuid.uuid4(), "object": uuid.uuid4(), "offer": uuid.uuid4()}
    with engine.begin() as connection:
        insert(connection, "users", id=ids["user"], email="old@example.org", role="patient")
        insert(
            connection,
            "cases",
            id=ids["case"],
            patient_id=ids["user"],
            reference="SO-OLD001",
            status="cancelled",
            body_region="spine",
            priority="standard",
            subject="Old case",
            clinical_question=CLEAR["question"],
            history=CLEAR["history"],
        )
        insert(
            connection,
            "case_events",
            case_id=ids["case"],
            to_status="cancelled",
            note=CLEAR["note"],
        )
        insert(
            connection,
            "case_questions",
            id=ids["question"],
            case_id=ids["case"],
            kind="clarification",
            asked_by=ids["user"],
            text=CLEAR["asked"],
            answer=CLEAR["answer"],
        )
        insert(
            connection,
            "opinions",
            id=ids["opinion"],
            case_id=ids["case"],
            author_id=ids["user"],
            status="signed",
            content={"impression": CLEAR["impression"]},
            canonical=CLEAR["canonical"],
        )
        insert(
            connection,
            "opinion_addenda",
            id=ids["addendum"],
            opinion_id=ids["opinion"],
            author_id=ids["user"],
            text=CLEAR["addendum"],
        )
        insert(
            connection,
            "stored_objects",
            id=ids["object"],
            case_id=ids["case"],
            object_key=f"cases/{ids['case']}/{uuid.uuid4().hex}",
        )
        insert(
            connection,
            "case_files",
            id=ids["file"],
            case_id=ids["case"],
            stored_object_id=ids["object"],
            uploaded_by=ids["user"],
            filename=CLEAR["filename"],
        )
        insert(
            connection,
            "case_assignments",
            id=ids["offer"],
            case_id=ids["case"],
            specialist_id=ids["user"],
            status="declined",
            reason=CLEAR["reason"],
        )
    return ids


def test_clear_text_of_an_old_database_is_sealed_after_the_upgrade(
    empty_database: str, tmp_path: Path, seaweed: EmbeddedS3
):
    engine = create_db_engine(empty_database)
    try:
        migrate.upgrade(engine, "0005")
        ids = old_rows(engine)
        migrate.upgrade(engine)
        columns = {c["name"] for c in sa.inspect(engine).get_columns("cases")}
        assert "clinical_question" not in columns and "clinical_question_sealed" in columns
        with Session(engine) as session:
            assert len(session.exec(select(PendingText)).all()) == len(CLEAR)
    finally:
        engine.dispose()

    app = create_app(make_settings(tmp_path, empty_database, seaweed))
    with (
        TestClient(app),  # start-up seals what the migration set aside
        texts.bind_vault(Session(app.state.engine), app.state.vault) as session,
    ):
        assert session.exec(select(PendingText)).all() == []
        case = session.get(Case, ids["case"])
        assert case is not None
        owner = Principal(user_id=case.patient_id, role=Role.patient)
        shown = cases_service.describe(session=session, principal=owner, case=case)
        assert (shown.clinical_question, shown.history) == (CLEAR["question"], CLEAR["history"])
        # A note by the staff or the system is theirs to read (the patient's timeline has none).
        staff = Principal(user_id=uuid.uuid4(), role=Role.coordinator)
        noted = cases_service.describe(session=session, principal=staff, case=case)
        assert [event.note for event in noted.timeline] == [CLEAR["note"]]
        sealer = texts.for_case(session=session, case_id=case.id)
        question = session.get(CaseQuestion, ids["question"])
        opinion = session.get(Opinion, ids["opinion"])
        addendum = session.get(OpinionAddendum, ids["addendum"])
        case_file = session.get(CaseFile, ids["file"])
        assert sealer.open(question, "text") == CLEAR["asked"]
        assert sealer.open(question, "answer") == CLEAR["answer"]
        assert opinion is not None
        content = opinions.content_of(session=session, opinion=opinion)
        assert content == {"impression": CLEAR["impression"]}
        assert sealer.open(opinion, "canonical") == CLEAR["canonical"]
        assert sealer.open(addendum, "text") == CLEAR["addendum"]
        assert sealer.open(case_file, "filename") == CLEAR["filename"]
        offer = session.get(CaseAssignment, ids["offer"])
        assert sealer.open(offer, "reason") == CLEAR["reason"]
        sealed = [
            case.clinical_question_sealed,
            case.history_sealed,
            question.text_sealed if question else None,
            case_file.filename_sealed if case_file else None,
        ]
        events = session.exec(select(CaseEvent)).all()
        sealed += [event.note_sealed for event in events]
        for value in sealed:
            assert value is not None and value[0] == 1
            assert not any(text.encode() in value for text in CLEAR.values())
