"""Keyset pagination of the API's lists: every item exactly once, cursors checked, limits kept."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from portal.accounts.models import Role
from portal.db import utcnow
from portal.pagination import MAX_LIMIT, encode_cursor
from reviewers.models import SpecialistProfile
from tests.fixtures.app import Accounts, open_case
from tests.fixtures.bulk import insert_cases, insert_images


def walk(
    client: TestClient, url: str, headers: dict[str, str], limit: int, **filters: str
) -> list[list[Any]]:
    """Follow ``next`` from the first page to the last; the items of each page."""
    pages: list[list[Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {**filters, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        answer = client.get(url, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"items", "next"}
        assert len(body["items"]) <= limit
        pages.append(body["items"])
        cursor = body["next"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "the cursor does not advance"


def test_the_case_list_walks_every_case_once_newest_first(
    app: FastAPI, client: TestClient, accounts: Accounts
):
    """Ties on created_at (bulk imports) are broken by id: nothing repeats, nothing is lost."""
    patient = accounts.patient()
    other = accounts.patient()
    now = utcnow()
    with app.state.engine.begin() as connection:
        tied = insert_cases(
            connection, patient_id=patient.user_id, count=5, created_at=now, spacing=timedelta(0)
        )
        spread = insert_cases(
            connection, patient_id=patient.user_id, count=6, created_at=now - timedelta(hours=1)
        )
        insert_cases(connection, patient_id=other.user_id, count=4, created_at=now)
    pages = walk(client, "/api/cases", patient.headers, limit=4)
    ids = [item["id"] for page in pages for item in page]
    assert [len(page) for page in pages] == [4, 4, 3]
    assert sorted(ids) == sorted(str(i) for i in [*tied, *spread])  # once each, only theirs
    created = [item["created_at"] for page in pages for item in page]
    assert created == sorted(created, reverse=True)


def test_the_status_filter_pages_too(app: FastAPI, client: TestClient, accounts: Accounts):
    patient = accounts.patient()
    coordinator = accounts.staff(Role.coordinator)
    with app.state.engine.begin() as connection:
        triage = insert_cases(connection, patient_id=patient.user_id, count=5, status="triage")
        insert_cases(connection, patient_id=patient.user_id, count=3, status="draft")
    pages = walk(client, "/api/cases", coordinator.headers, limit=2, status="triage")
    ids = [item["id"] for page in pages for item in page]
    assert sorted(ids) == sorted(str(i) for i in triage)
    assert {item["status"] for page in pages for item in page} == {"triage"}


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "%%%",
        base64.urlsafe_b64encode(b"{}").decode(),  # JSON, but not a list
        base64.urlsafe_b64encode(b'["2026-12-03T10:00:00+00:00"]').decode(),  # too short
        encode_cursor(["2026-12-03T10:00:00+00:00", "not-a-uuid"]),
        encode_cursor(["2026-12-03T10:00:00", "0b4f3e56-3a8a-4a7e-9d3e-2f7d7c1f7a10"]),  # naive
        encode_cursor([17]),  # an audit position given to the case list
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),  # not text
    ],
)
def test_a_cursor_the_list_did_not_give_out_is_a_400(
    client: TestClient, accounts: Accounts, cursor: str
):
    patient = accounts.patient()
    answer = client.get("/api/cases", params={"cursor": cursor}, headers=patient.headers)
    assert answer.status_code == 400
    assert "cursor" in answer.json()["detail"] and "first page" in answer.json()["detail"]


def test_limit_has_a_default_and_bounds(app: FastAPI, client: TestClient, accounts: Accounts):
    patient = accounts.patient()
    with app.state.engine.begin() as connection:
        insert_cases(connection, patient_id=patient.user_id, count=52)
    first = client.get("/api/cases", headers=patient.headers).json()
    assert len(first["items"]) == 50 and first["next"] is not None
    for bad in (0, -1, MAX_LIMIT + 1):
        answer = client.get("/api/cases", params={"limit": bad}, headers=patient.headers)
        assert answer.status_code == 422 and "limit" in answer.json()["detail"]
    largest = client.get("/api/cases", params={"limit": MAX_LIMIT}, headers=patient.headers)
    assert len(largest.json()["items"]) == 52 and largest.json()["next"] is None


def test_case_files_page_in_the_order_they_arrived(
    app: FastAPI, client: TestClient, accounts: Accounts
):
    patient = accounts.patient()
    case = open_case(client, patient)
    with app.state.engine.begin() as connection:
        files = insert_images(
            connection,
            case_id=uuid.UUID(case["id"]),
            uploader_id=patient.user_id,
            instances=7,
            spacing=timedelta(0),  # one ZIP's entries can share a timestamp
        )
    pages = walk(client, f"/api/cases/{case['id']}/files", patient.headers, limit=3)
    assert [len(page) for page in pages] == [3, 3, 1]
    assert sorted(item["id"] for page in pages for item in page) == sorted(map(str, files))
    stranger = accounts.patient()
    hidden = client.get(f"/api/cases/{case['id']}/files", headers=stranger.headers)
    assert hidden.status_code == 404


def test_the_audit_trail_pages_by_cursor(client: TestClient, accounts: Accounts):
    patient = accounts.patient()
    case = open_case(client, patient)
    coordinator = accounts.staff(Role.coordinator)
    for _ in range(4):
        assert client.get(f"/api/cases/{case['id']}", headers=coordinator.headers).is_success
    pages = walk(client, "/api/audit", coordinator.headers, limit=2, case_id=case["id"])
    ids = [item["id"] for page in pages for item in page]  # append order: sealed or not
    assert len(ids) == len(set(ids)) >= 5  # case.create and four case.read at least
    assert ids == sorted(ids, reverse=True)
    assert {item["case_id"] for page in pages for item in page} == {case["id"]}


def _profiles(app: FastAPI) -> int:
    with Session(app.state.engine) as session:
        return session.exec(select(func.count()).select_from(SpecialistProfile)).one()


def test_specialists_page_by_name_and_listing_writes_no_profile(
    app: FastAPI, client: TestClient, accounts: Accounts
):
    """A specialist account without a profile is listed with an empty one; reading the list
    stores nothing (it used to create each missing profile while reading)."""
    coordinator = accounts.staff(Role.coordinator)
    bare = [accounts.staff(Role.specialist, f"Dr {name}") for name in ("Cole", "Abe", "Bex")]
    profiled = accounts.specialist("Dr Dee", body_regions=["spine"])
    profiles = _profiles(app)
    pages = walk(client, "/api/specialists", coordinator.headers, limit=2)
    listed = [item for page in pages for item in page]
    assert [item["full_name"] for item in listed] == ["Dr Abe", "Dr Bex", "Dr Cole", "Dr Dee"]
    assert _profiles(app) == profiles
    by_id = {item["id"]: item for item in listed}
    assert by_id[str(profiled.user_id)]["body_regions"] == ["spine"]
    assert all(by_id[str(account.user_id)]["body_regions"] == [] for account in bare)
    assert all(by_id[str(account.user_id)]["languages"] == ["en"] for account in bare)
