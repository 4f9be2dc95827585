"""Free text of a case is ciphertext in the database (and its backups), clear on the pages,
refused when altered or moved, and unreadable from a backup once the case is erased, even
with the key-encryption key that still exists. SQLite and PostgreSQL, real SeaweedFS."""

from __future__ import annotations

import io
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlmodel import Session, col, select

from portal import storage_commands
from portal.cases.models import Case
from portal.objects import texts
from portal.objects.models import CaseKey, StoredObject
from portal.objects.texts import bind_vault
from portal.settings import Settings
from storage.errors import IntegrityError, ObjectNotFound
from storage.textcipher import TextBinding, TextCipher
from storage.vault import Vault, build_vault, key_context
from tests.fixtures.app import Accounts
from tests.portal import samples
from tests.portal.test_pages import browser_sign_in
from tests.reviewers.conftest import Team, ready_case, submit, upload
from tests.services import PostgresServer

QUESTION = "SEALTEST-QUESTION: is the T11 lesion a typical hemangioma?"
HISTORY = "SEALTEST-HISTORY: back pain for three months"
FILE_NAME = "SEALTEST-FILENAME-report.pdf"
ASKED = "SEALTEST-ASKED: please send the MRI report"
ANSWER = "SEALTEST-ANSWER: the MRI report is attached"
IMPRESSION = "SEALTEST-IMPRESSION: typical vertebral hemangioma"
FOLLOW_UP = "SEALTEST-FOLLOWUP: may I do sports?"
ADDENDUM = "SEALTEST-ADDENDUM: yes, without limits"
DECLINED = "SEALTEST-DECLINED: I am away that week"
PLAINTEXTS = [
    QUESTION,
    HISTORY,
    FILE_NAME,
    ASKED,
    ANSWER,
    IMPRESSION,
    FOLLOW_UP,
    ADDENDUM,
    DECLINED,
]
OPINION = {
    "summary": "Single lesion of the T11 body.",
    "findings": "Coarse vertical trabeculae; no soft tissue.",
    "impression": IMPRESSION,
    "answers": [{"question": "Does it need treatment?", "answer": "No treatment now."}],
    "recommendations": {"treatment_options": "Observation.", "urgency": "routine"},
}


def delivered_case(client: TestClient, accounts: Accounts, team: Team) -> dict[str, Any]:
    """A case carried through questions, a signed opinion and a follow-up addendum."""
    patient = accounts.patient()
    case = ready_case(client, patient, clinical_question=QUESTION, history=HISTORY)
    url = f"/api/cases/{case['id']}"
    upload(client, patient, case["id"], (FILE_NAME, samples.pdf(pages=1)))
    assigned = submit(client, patient, case["id"])["assigned_specialist"]["id"]
    first, second = sorted(
        (team.spine_ru, team.spine_en), key=lambda one: str(one.user_id) != assigned
    )
    declined = client.post(f"{url}/decline", json={"reason": DECLINED}, headers=first.headers)
    assert declined.status_code == 200, declined.text
    now = client.get(url, headers=team.coordinator.headers).json()
    assert now["assigned_specialist"]["id"] == str(second.user_id)
    specialist = second
    assert client.post(f"{url}/accept", headers=specialist.headers).status_code == 200
    asked = client.post(f"{url}/questions", json={"text": ASKED}, headers=specialist.headers)
    question_id = asked.json()["id"]
    answered = client.post(
        f"{url}/questions/{question_id}/answer", json={"text": ANSWER}, headers=patient.headers
    )
    assert answered.status_code == 200, answered.text
    assert client.put(f"{url}/opinion", json=OPINION, headers=specialist.headers).status_code == 200
    signed = client.post(
        f"{url}/opinion/sign",
        json={"password": specialist.password, "otp": specialist.next_otp()},
        headers=specialist.headers,
    )
    assert signed.status_code == 200, signed.text
    follow = client.post(f"{url}/questions", json={"text": FOLLOW_UP}, headers=patient.headers)
    added = client.post(
        f"{url}/questions/{follow.json()['id']}/answer",
        json={"text": ADDENDUM},
        headers=specialist.headers,
    )
    assert added.status_code == 200, added.text
    return {"id": case["id"], "url": url, "patient": patient, "specialist": specialist}


def backup(app: FastAPI, settings: Settings, postgres_or_none: PostgresServer | None) -> bytes:
    """What a database backup holds: a real ``pg_dump``, or a copy of the SQLite files."""
    url = sa.make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))  # the database file and its write-ahead log
        return b"".join(
            Path(name).read_bytes() for name in (path, Path(f"{path}-wal")) if Path(name).exists()
        )
    assert postgres_or_none is not None
    pg_dump = _pg_dump()
    dumped = subprocess.run(
        [pg_dump, "-h", str(url.host), "-p", str(url.port), "-U", str(url.username), url.database],
        check=True,
        capture_output=True,
    )
    return dumped.stdout


def _pg_dump() -> str:
    for version_dir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (version_dir / "pg_dump").exists():
            return str(version_dir / "pg_dump")
    found = shutil.which("pg_dump")
    assert found is not None, "pg_dump is installed beside pg_ctl"
    return found


def server_for(request: pytest.FixtureRequest, settings: Settings) -> PostgresServer | None:
    if settings.database_url.startswith("sqlite"):
        return None
    server: PostgresServer = request.getfixturevalue("postgres")
    return server


def by_id(sql: str) -> sa.TextClause:
    """Raw SQL whose ``:id`` is a UUID as each backend stores it."""
    return sa.text(sql).bindparams(sa.bindparam("id", type_=sa.Uuid()))


def raw(app: FastAPI, sql: str, **params: Any) -> Any:
    with app.state.engine.connect() as connection:
        return connection.execute(by_id(sql), params).one()


def test_text_is_ciphertext_in_the_database_and_clear_where_it_is_shown(
    client: TestClient,
    accounts: Accounts,
    team: Team,
    app: FastAPI,
    settings: Settings,
    request: pytest.FixtureRequest,
):
    case = delivered_case(client, accounts, team)
    dump = backup(app, settings, server_for(request, settings))
    for plaintext in PLAINTEXTS:
        assert plaintext.encode() not in dump, plaintext
    sealed = sealed_value(app, "clinical_question_sealed", _db_id(app, case))
    assert sealed[0] == 1 and QUESTION.encode() not in sealed

    patient = case["patient"]
    shown = client.get(case["url"], headers=patient.headers).json()
    assert shown["clinical_question"] == QUESTION and shown["history"] == HISTORY
    files = client.get(f"{case['url']}/files", headers=patient.headers).json()["items"]
    assert FILE_NAME in [item["filename"] for item in files]
    asked = client.get(f"{case['url']}/questions", headers=patient.headers).json()
    assert {(item["text"], item["answer"]) for item in asked} == {
        (ASKED, ANSWER),
        (FOLLOW_UP, ADDENDUM),
    }
    opinion = client.get(f"{case['url']}/opinion", headers=patient.headers).json()
    assert opinion["content"]["impression"] == IMPRESSION
    assert [item["text"] for item in opinion["addenda"]] == [ADDENDUM]
    pdf = client.get(f"{case['url']}/opinion.pdf", headers=patient.headers)
    printed = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert IMPRESSION in " ".join(printed.split()) and ADDENDUM in " ".join(printed.split())
    browser_sign_in(client, patient)
    page = client.get(f"/cases/{case['id']}")
    client.cookies.clear()
    for shown_text in (QUESTION, HISTORY, ASKED, ANSWER, FILE_NAME, IMPRESSION):
        assert shown_text in page.text, shown_text
    browser_sign_in(client, team.coordinator)
    staff_page = client.get(f"/cases/{case['id']}")
    client.cookies.clear()
    assert DECLINED in staff_page.text  # the offer history and the timeline note


CASES = sa.table(
    "cases",
    sa.column("id", sa.Uuid()),
    sa.column("clinical_question_sealed", sa.LargeBinary()),
    sa.column("history_sealed", sa.LargeBinary()),
)


def sealed_value(app: FastAPI, column: str, case_id: uuid.UUID) -> bytes:
    with app.state.engine.connect() as connection:
        query = sa.select(CASES.c[column]).where(CASES.c.id == case_id)
        return bytes(connection.execute(query).scalar_one())


def store(app: FastAPI, column: str, case_id: uuid.UUID, value: bytes) -> None:
    with app.state.engine.begin() as connection:
        connection.execute(CASES.update().where(CASES.c.id == case_id).values({column: value}))


def test_an_altered_or_moved_value_fails_loudly(
    client: TestClient, accounts: Accounts, team: Team, app: FastAPI
):
    case = delivered_case(client, accounts, team)
    other = delivered_case(client, accounts, team)
    case_id, other_id = _db_id(app, case), _db_id(app, other)
    patient = case["patient"]
    history = sealed_value(app, "history_sealed", case_id)
    damaged = bytearray(history)
    damaged[-3] ^= 0x01
    for column, value in [
        ("history_sealed", bytes(damaged)),  # one bit changed
        ("clinical_question_sealed", history),  # the history, put where the question goes
        ("history_sealed", sealed_value(app, "history_sealed", other_id)),  # another case's
    ]:
        before = sealed_value(app, column, case_id)
        store(app, column, case_id, value)
        shown = as_browser_sees(app).get(case["url"], headers=patient.headers)
        assert shown.status_code == 500, shown.text
        assert HISTORY not in shown.text and QUESTION not in shown.text
        store(app, column, case_id, before)
    assert client.get(case["url"], headers=patient.headers).json()["history"] == HISTORY


def test_a_backup_taken_before_erasure_stays_unreadable_with_the_keyring(
    client: TestClient,
    accounts: Accounts,
    team: Team,
    app: FastAPI,
    settings: Settings,
    request: pytest.FixtureRequest,
):
    case = delivered_case(client, accounts, team)
    case_id = _db_id(app, case)
    dump = backup(app, settings, server_for(request, settings))
    # What the backup holds for the case: the wrapped data key, where its key share lives,
    # and the sealed text (read with SQL; the dump has the same bytes).
    wrapped, share_key, share_sha = raw(
        app,
        "SELECT k.wrapped_key, o.object_key, o.sha256 FROM case_keys k "
        "JOIN stored_objects o ON o.id = k.text_share_id WHERE k.case_id = :id",
        id=case_id,
    )
    wrapped = bytes(wrapped)
    sealed = sealed_value(app, "history_sealed", case_id)
    assert share_key.encode() in dump and QUESTION.encode() not in dump

    assert storage_commands.erase_case(settings, case["id"]) == 0
    for plaintext in PLAINTEXTS:
        assert plaintext.encode() not in dump, plaintext

    vault: Vault = build_vault(settings.storage)  # a fresh process: nothing cached
    cid = case["id"]
    data_key = vault.keys.unwrap(wrapped, context=key_context(cid))  # the KEK still exists...
    assert len(data_key) == 32
    with pytest.raises(ObjectNotFound):  # ...but the key share went with the case's objects
        vault.text_cipher(
            case_id=cid, wrapped_key=wrapped, share_key=share_key, share_sha256=share_sha
        )
    with pytest.raises(IntegrityError):  # and the data key alone opens nothing
        TextCipher(data_key).open(sealed, TextBinding("cases", "history", cid))


def as_browser_sees(app: FastAPI) -> TestClient:
    """A client that gets the server's error answer instead of the exception (the app's
    lifespan is already running under the ``client`` fixture)."""
    return TestClient(app, base_url="http://testserver", raise_server_exceptions=False)


def _db_id(app: FastAPI, case: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(case["id"])


def test_a_prefetched_text_key_opens_the_text_and_a_lost_share_still_fails_loudly(
    app: FastAPI, client: TestClient, accounts: Accounts
):
    """The case page starts deriving the text key while it queries (``texts.prefetch``): the
    cipher it yields opens the case's text, and a key share gone from the bucket is the same
    error as without the prefetch, each time it is asked for, never a cipher."""
    patient = accounts.patient()
    case_id = uuid.UUID(ready_case(client, patient, series=1, clinical_question=QUESTION)["id"])
    vault: Vault = app.state.vault
    with bind_vault(Session(app.state.engine), vault) as session:
        texts.prefetch(session=session, case_id=case_id)
        case = session.get(Case, case_id)
        assert case is not None
        assert (
            texts.for_case(session=session, case_id=case_id).open(case, "clinical_question")
            == QUESTION
        )
        share = session.exec(
            select(StoredObject)
            .join(CaseKey, col(CaseKey.text_share_id) == col(StoredObject.id))
            .where(CaseKey.case_id == case_id)
        ).one()
        share_key = share.object_key
    vault.store.delete(share_key)
    vault.text_keys.clear()
    with bind_vault(Session(app.state.engine), vault) as session:
        texts.prefetch(session=session, case_id=case_id)
        for _ in range(2):
            with pytest.raises(ObjectNotFound):
                texts.for_case(session=session, case_id=case_id)
