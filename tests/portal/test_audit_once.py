"""One audit row per user action: a page or API read writes one row, however many services
it calls."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from portal.accounts.models import Role
from portal.audit.models import AuditEvent
from tests.fixtures.app import Accounts
from tests.portal.test_pages import browser_sign_in
from tests.reviewers.conftest import ready_case, submit


def newest_id(db: Session) -> int:
    db.expire_all()
    newest = db.exec(select(func.max(AuditEvent.id))).one() or 0
    db.commit()
    return newest


def actions_since(db: Session, after: int) -> list[str]:
    db.expire_all()
    actions = db.exec(
        select(AuditEvent.action).where(col(AuditEvent.id) > after).order_by(col(AuditEvent.id))
    ).all()
    db.commit()
    return list(actions)


def test_a_coordinator_opening_a_case_page_writes_one_row(
    client: TestClient, accounts: Accounts, db: Session
):
    coordinator = accounts.staff(Role.coordinator)
    patient = accounts.patient()
    case = ready_case(client, patient)
    submit(client, patient, case["id"])
    client.cookies.clear()
    browser_sign_in(client, coordinator)
    before = newest_id(db)
    page = client.get(f"/cases/{case['id']}")
    assert page.status_code == 200
    assert actions_since(db, before) == ["case.read"]
    assert 'id="audit-trail"' in page.text
    assert "<td>None</td>" not in page.text  # rows not sealed yet have no position to show


def test_an_api_read_and_a_dicomweb_request_write_one_row_each(
    client: TestClient, accounts: Accounts, db: Session
):
    coordinator = accounts.staff(Role.coordinator)
    patient = accounts.patient()
    case = ready_case(client, patient)
    submit(client, patient, case["id"])
    before = newest_id(db)
    assert client.get(f"/api/cases/{case['id']}", headers=coordinator.headers).status_code == 200
    assert actions_since(db, before) == ["case.read"]
    before = newest_id(db)
    studies = client.get(
        f"/api/cases/{case['id']}/dicomweb/studies",
        headers={**coordinator.headers, "Accept": "application/dicom+json"},
    )
    assert studies.status_code == 200, studies.text
    assert actions_since(db, before) == ["dicomweb.search"]
