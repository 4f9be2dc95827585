"""Share links for the patient's own doctor, on SQLite and PostgreSQL with real SeaweedFS: made,
listed and revoked by the patient; opened without an account; the PDF, the images through the
link's scoped principal, the access code and its throttle; expiry and revocation answering
exactly like a link that never existed; the audit trail; the page in Russian."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from portal.audit.models import AuditEvent
from portal.db import utcnow
from portal.intake.models import DicomInstance, DicomSeries, DicomStudy
from reviewers.sharing.models import ShareLink
from tests.fixtures.app import Account, Accounts
from tests.fixtures.logs import SENSITIVE
from tests.portal.test_pages import browser_sign_in, check_page
from tests.reviewers.conftest import Team, ready_case, submit
from tests.reviewers.test_journey import OPINION

SHARED_HEADERS = {
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    "x-robots-tag": "noindex, nofollow",
}


def delivered_case(client: TestClient, patient: Account, team: Team) -> dict[str, Any]:
    """A Russian spine case with a CT series and a signed opinion (by ``team.spine_ru``)."""
    case = ready_case(client, patient, language="ru")
    assert submit(client, patient, case["id"])["status"] == "assigned"
    url = f"/api/cases/{case['id']}"
    specialist = team.spine_ru
    assert client.post(f"{url}/accept", headers=specialist.headers).status_code == 200
    saved = client.put(f"{url}/opinion", json=OPINION, headers=specialist.headers)
    assert saved.status_code == 200, saved.text
    signed = client.post(
        f"{url}/opinion/sign",
        json={"password": specialist.password, "otp": specialist.next_otp()},
        headers=specialist.headers,
    )
    assert signed.status_code == 200, signed.text
    return case


def share(client: TestClient, patient: Account, case_id: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/api/cases/{case_id}/share-links", json=body, headers=patient.headers)
    assert response.status_code == 201, response.text
    issued = dict(response.json())
    SENSITIVE.add(issued["url"].rsplit("/", 1)[1], issued.get("access_code"))
    return issued


def path_of(issued: dict[str, Any]) -> str:
    return "/shared/" + issued["url"].rsplit("/shared/", 1)[1]


def stranger(app: FastAPI, **headers: str) -> TestClient:
    """A browser with no account and no cookies (the app is already running)."""
    return TestClient(app, base_url="http://testserver", headers=headers)


def series_and_instance(db: Session, case_id: str) -> tuple[uuid.UUID, uuid.UUID]:
    series, instance = db.exec(
        select(DicomSeries.id, DicomInstance.id)
        .join(DicomStudy, col(DicomStudy.id) == col(DicomSeries.study_id))
        .join(DicomInstance, col(DicomInstance.series_id) == col(DicomSeries.id))
        .where(DicomStudy.case_id == uuid.UUID(case_id))
    ).first() or (None, None)
    db.rollback()  # end the read: SQLite writers wait for it
    assert series is not None and instance is not None
    return series, instance


def link_row(db: Session, link_id: str) -> ShareLink:
    row = db.get(ShareLink, uuid.UUID(link_id), populate_existing=True)
    assert row is not None
    return row


def answers_like_unknown(doctor: TestClient, token: str, suffix: str, response: Any) -> None:
    """``response`` is exactly what a link that never existed answers at the same place (its
    own address aside: the page's language links lead back to it)."""
    fake = "z" * len(token)
    missing = doctor.get(f"/shared/{fake}{suffix}")
    assert response.status_code == missing.status_code == 404
    assert response.text.replace(token, fake) == missing.text


def audit_of(db: Session, link_id: str) -> list[tuple[str, str, str | None, str, str | None]]:
    """(action, outcome, actor role, case id, entity id) of what the link did, oldest first."""
    events = db.exec(
        select(AuditEvent)
        .where(AuditEvent.actor_id == uuid.UUID(link_id))
        .order_by(col(AuditEvent.id))
    ).all()
    rows = [(e.action, e.outcome, e.actor_role, str(e.case_id), e.entity_id) for e in events]
    db.rollback()  # end the read: SQLite writers wait for it
    return rows


def assert_shared_headers(response: Any) -> None:
    for name, value in SHARED_HEADERS.items():
        assert response.headers[name] == value, (name, response.headers.get(name))


def test_the_patient_shares_the_opinion_and_the_doctor_reads_it_without_an_account(
    client: TestClient, accounts: Accounts, team: Team, app: FastAPI, db: Session
):
    patient = accounts.patient()
    case = delivered_case(client, patient, team)
    issued = share(client, patient, case["id"], note="Dr Ivanova")
    assert issued["images"] is False and issued["access_code"] is None
    assert issued["url"].startswith("http") and "/shared/" in issued["url"]
    token = issued["url"].rsplit("/", 1)[1]
    lifetime = link_row(db, issued["id"]).expires_at - utcnow()
    assert timedelta(days=13, hours=23) < lifetime <= timedelta(days=14)
    db.rollback()

    doctor = stranger(app)
    page = doctor.get(path_of(issued))
    assert page.status_code == 200, page.text
    assert_shared_headers(page)
    parsed = check_page(page)
    assert "opinion" in parsed.ids and "shared-images" not in parsed.ids
    assert OPINION["findings"] in page.text
    assert "Dr Ivanova" not in page.text  # the note is for the patient's list only
    assert f"/shared/{token}/opinion.pdf" in parsed.links
    assert f"/api/cases/{case['id']}/opinion.pdf" not in page.text

    pdf = doctor.get(f"/shared/{token}/opinion.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert_shared_headers(pdf)
    own = client.get(f"/api/cases/{case['id']}/opinion.pdf", headers=patient.headers)
    assert pdf.content == own.content

    # Images were not chosen: the viewer and the series answer like a missing link.
    series_id, instance_id = series_and_instance(db, case["id"])
    for suffix in (
        "/viewer",
        f"/series/{series_id}",
        f"/series/{series_id}/thumbnail",
        f"/instances/{instance_id}/frames/1",
    ):
        answers_like_unknown(doctor, token, suffix, doctor.get(f"/shared/{token}{suffix}"))

    # The secret is kept only as a hash; the list shows uses, never the secret.
    row = link_row(db, issued["id"])
    assert token not in str(row.model_dump()) and len(row.token_hash) == 64
    assert (row.uses, row.images, row.code_hash) == (2, False, None)
    db.rollback()
    listed = client.get(f"/api/cases/{case['id']}/share-links", headers=patient.headers)
    assert listed.status_code == 200
    (item,) = listed.json()["items"]
    assert token not in listed.text and "url" not in item
    assert item["uses"] == 2 and item["last_used_at"] and item["active"] is True
    assert item["note"] == "Dr Ivanova"

    # Every use is audited with the link as the actor, in the trail of the case.
    events = audit_of(db, issued["id"])
    actions = [event[0] for event in events]
    assert actions.count("share.view") == 1 and actions.count("share.pdf") == 1
    assert all(event[2] == "share_link" and event[3] == case["id"] for event in events)
    assert all(event[4] == issued["id"] for event in events if event[0].startswith("share."))

    # Revoked at once: exactly the answer of a link that never existed.
    revoked = client.delete(
        f"/api/cases/{case['id']}/share-links/{issued['id']}", headers=patient.headers
    )
    assert revoked.status_code == 204
    gone = doctor.get(path_of(issued))
    answers_like_unknown(doctor, token, "", gone)
    assert_shared_headers(gone)
    answers_like_unknown(doctor, token, "/opinion.pdf", doctor.get(f"/shared/{token}/opinion.pdf"))
    listed = client.get(f"/api/cases/{case['id']}/share-links", headers=patient.headers)
    assert listed.json()["items"][0]["revoked_at"] and not listed.json()["items"][0]["active"]
    refused = [event for event in audit_of(db, issued["id"]) if event[0] == "share.refused"]
    assert refused and all(event[1] == "refused" for event in refused)


def test_images_are_read_through_the_link_only_on_its_case_and_only_while_it_works(
    client: TestClient, accounts: Accounts, team: Team, app: FastAPI, db: Session
):
    patient = accounts.patient()
    case = delivered_case(client, patient, team)
    other_patient = accounts.patient()
    other = ready_case(client, other_patient)
    issued = share(client, patient, case["id"], images=True, days=3)
    token = issued["url"].rsplit("/", 1)[1]
    series_id, instance_id = series_and_instance(db, case["id"])
    other_series, other_instance = series_and_instance(db, other["id"])
    doctor = stranger(app)

    page = check_page(doctor.get(f"/shared/{token}"))
    assert "shared-images" in page.ids
    assert f"/shared/{token}/viewer?series={series_id}" in page.links
    viewer = doctor.get(f"/shared/{token}/viewer?series={series_id}")
    assert viewer.status_code == 200
    assert_shared_headers(viewer)
    assert f'data-api-root="/shared/{token}"' in viewer.text
    described = doctor.get(f"/shared/{token}/series/{series_id}")
    assert described.status_code == 200, described.text
    assert_shared_headers(described)
    assert described.json()["total_frames"] == 2
    frame = doctor.get(f"/shared/{token}/instances/{instance_id}/frames/1?preset=bone")
    assert frame.status_code == 200 and frame.content.startswith(b"\x89PNG")
    assert_shared_headers(frame)
    thumbnail = doctor.get(f"/shared/{token}/series/{series_id}/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/png"

    # Another case's images through this link: not found, as if they did not exist.
    assert doctor.get(f"/shared/{token}/series/{other_series}").status_code == 404
    assert doctor.get(f"/shared/{token}/instances/{other_instance}/frames/1").status_code == 404
    # The link reads, never more: the case's own API does not take it.
    api = doctor.get(
        f"/api/cases/{case['id']}/series/{series_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert api.status_code == 401

    actions = {event[0] for event in audit_of(db, issued["id"])}
    assert {"share.view", "share.viewer", "share.images", "viewer.series"} <= actions

    # Expired (moved in the database): the images and the page answer like an unknown link.
    row = link_row(db, issued["id"])
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.add(row)
    db.commit()
    for suffix in ("", f"/series/{series_id}", f"/instances/{instance_id}/frames/1"):
        answers_like_unknown(doctor, token, suffix, doctor.get(f"/shared/{token}{suffix}"))


def test_an_access_code_is_required_and_its_tries_are_throttled(
    client: TestClient, accounts: Accounts, team: Team, app: FastAPI, db: Session
):
    patient = accounts.patient()
    case = delivered_case(client, patient, team)
    issued = share(client, patient, case["id"], access_code=True)
    code = issued["access_code"]
    assert code and len(code.replace(" ", "")) == 8
    row = link_row(db, issued["id"])
    assert row.code_hash and code.replace(" ", "") not in str(row.model_dump())
    db.rollback()
    token = issued["url"].rsplit("/", 1)[1]
    doctor = stranger(app)

    asked = doctor.get(f"/shared/{token}")
    assert asked.status_code == 200
    assert_shared_headers(asked)
    form = check_page(asked).form(f"/shared/{token}")
    assert "opinion" not in check_page(asked).ids and OPINION["findings"] not in asked.text
    assert doctor.get(f"/shared/{token}/opinion.pdf").status_code == 403

    wrong = "0000 0000" if code != "0000 0000" else "1111 1111"
    for _try in range(5):
        answer = doctor.post(
            f"/shared/{token}", data={"code": wrong, "csrf_token": form["inputs"]["csrf_token"]}
        )
        assert answer.status_code == 403, answer.text
        form = check_page(answer).form(f"/shared/{token}")
    for attempt in (wrong, code):  # the window is closed even to the right code
        throttled = doctor.post(
            f"/shared/{token}", data={"code": attempt, "csrf_token": form["inputs"]["csrf_token"]}
        )
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0
        form = check_page(throttled).form(f"/shared/{token}")
    assert doctor.get(f"/shared/{token}/opinion.pdf").status_code == 403

    outcomes = [event[1] for event in audit_of(db, issued["id"]) if event[0] == "share.code"]
    assert (outcomes.count("failure"), outcomes.count("throttled")) == (5, 2)

    # Once the window has passed, the right code opens the link in this browser only.
    row = link_row(db, issued["id"])
    row.code_failures_since = utcnow() - timedelta(minutes=16)
    db.add(row)
    db.commit()
    opened = doctor.post(
        f"/shared/{token}",
        data={"code": code, "csrf_token": form["inputs"]["csrf_token"]},
        follow_redirects=False,
    )
    assert opened.status_code == 303 and opened.headers["location"] == f"/shared/{token}"
    assert f"Path=/shared/{token}" in opened.headers["set-cookie"]
    assert "HttpOnly" in opened.headers["set-cookie"]
    page = doctor.get(f"/shared/{token}")
    assert "opinion" in check_page(page).ids
    assert doctor.get(f"/shared/{token}/opinion.pdf").status_code == 200
    assert stranger(app).get(f"/shared/{token}/opinion.pdf").status_code == 403


def test_only_the_patient_shares_and_only_a_delivered_opinion(
    client: TestClient, accounts: Accounts, team: Team, app: FastAPI
):
    patient = accounts.patient()
    draft = ready_case(client, patient)
    early = client.post(f"/api/cases/{draft['id']}/share-links", json={}, headers=patient.headers)
    assert early.status_code == 409 and "delivered" in early.json()["detail"]

    case = delivered_case(client, patient, team)
    url = f"/api/cases/{case['id']}/share-links"
    assert client.post(url, json={}, headers=accounts.patient().headers).status_code == 404
    assert client.post(url, json={}, headers=team.spine_ru.headers).status_code == 403
    assert client.get(url, headers=team.coordinator.headers).status_code == 403
    for days in (0, 91, "many"):
        bad = client.post(url, json={"days": days}, headers=patient.headers)
        assert bad.status_code == 422, bad.text
    assert client.get(url, headers=patient.headers).json()["items"] == []
    longest = share(client, patient, case["id"], days=90)
    assert longest["expires_at"] > (utcnow() + timedelta(days=89)).isoformat()[:10]
    unknown = client.delete(f"{url}/{uuid.uuid4()}", headers=patient.headers)
    assert unknown.status_code == 404
    stolen = client.delete(f"{url}/{longest['id']}", headers=accounts.patient().headers)
    assert stolen.status_code == 404

    # Staff who read the case find no sharing on its page: the links are the patient's.
    browser = stranger(app)
    browser_sign_in(browser, team.coordinator)
    assert "share-links" not in check_page(browser.get(f"/cases/{case['id']}")).ids


def test_the_case_page_makes_shows_and_revokes_links_and_the_doctor_reads_russian(
    client: TestClient, accounts: Accounts, team: Team, app: FastAPI
):
    patient = accounts.patient()
    case = delivered_case(client, patient, team)
    browser = stranger(app)
    browser_sign_in(browser, patient)
    page = check_page(browser.get(f"/cases/{case['id']}"))
    form = page.form(f"/cases/{case['id']}/share-links")
    assert "share-link-list" not in page.ids

    made = browser.post(
        f"/cases/{case['id']}/share-links",
        data={
            "csrf_token": form["inputs"]["csrf_token"],
            "days": "7",
            "images": "true",
            "access_code": "true",
            "note": "Доктор Иванова",
        },
    )
    assert made.status_code == 200, made.text
    shown = check_page(made)
    assert {"issued-share", "share-url", "share-code", "share-link-list"} <= shown.ids
    url = input_value(made.text, "share-url")
    code = input_value(made.text, "share-code")
    SENSITIVE.add(url.rsplit("/", 1)[1], code)
    again = browser.get(f"/cases/{case['id']}")
    assert url not in again.text and "issued-share" not in check_page(again).ids
    assert "Доктор Иванова" in again.text

    # The doctor's browser speaks Russian: the code form and the opinion page are in Russian.
    doctor = stranger(app, **{"Accept-Language": "ru-RU,ru;q=0.9"})
    path = "/shared/" + url.rsplit("/shared/", 1)[1]
    asked = doctor.get(path)
    assert asked.headers["content-language"] == "ru" and 'lang="ru"' in asked.text
    assert "Код доступа" in asked.text
    token_field = check_page(asked).form(path)["inputs"]["csrf_token"]
    doctor.post(path, data={"code": code, "csrf_token": token_field})
    opinion = doctor.get(path)
    assert opinion.status_code == 200 and opinion.headers["content-language"] == "ru"
    assert "Заключение" in opinion.text or "заключение" in opinion.text
    assert "Скачать" in opinion.text

    # The patient sees the use, then revokes the link from the page.
    listed = check_page(browser.get(f"/cases/{case['id']}"))
    link_id = next(
        action.split("/")[-2]
        for action in (f["action"] for f in listed.forms)
        if action.endswith("/revoke") and "/share-links/" in action
    )
    revoked = browser.post(
        f"/cases/{case['id']}/share-links/{link_id}/revoke",
        data={"csrf_token": form["inputs"]["csrf_token"]},
        follow_redirects=False,
    )
    assert revoked.status_code == 303
    assert doctor.get(path).status_code == 404
    assert "share-link-list" not in check_page(browser.get(f"/cases/{case['id']}")).ids


def input_value(html: str, element_id: str) -> str:
    """The ``value`` of the input with ``element_id``."""
    marker = f'id="{element_id}" readonly value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]
