"""From the opinion to treatment, on SQLite and PostgreSQL with real SeaweedFS and SMTP: the
guide's seed, the coordinators' editor, options linked in a signed opinion, the patient's
view in Russian and a treatment-plan request answered by mail."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import date, timedelta
from html.parser import HTMLParser
from typing import Any

from babel.dates import format_date
from babel.numbers import format_currency
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from portal import admin_commands
from portal.accounts.models import Role
from portal.audit.models import AuditEvent
from portal.audit.service import SYSTEM
from portal.db import utcnow
from portal.notifications import service as notifications
from portal.notifications.models import NotificationKind, OutboxMessage
from portal.objects import texts
from portal.settings import Settings
from reviewers.models import Opinion, OpinionContent
from reviewers.treatment import seed
from reviewers.treatment.models import (
    Clinic,
    ClinicOffer,
    Condition,
    TreatmentOption,
    TreatmentRequest,
)
from tests.fixtures.app import Account, Accounts
from tests.fixtures.smtp import SmtpServer
from tests.portal.test_pages import browser_sign_in, check_page
from tests.reviewers.conftest import Team, ready_case, submit
from tests.reviewers.test_journey import OPINION

LINKED = ["vertebroplasty", "embolization"]
GUIDE_TABLES = (Condition, TreatmentOption, Clinic, ClinicOffer)
NOTES = "Хотелось бы палату на одного; боюсь наркоза."
ANSWER = "EMC can admit you on the first day of your trip; the plan is attached in the portal."


class Section(HTMLParser):
    """The text inside the element with ``id`` (and the forms in it)."""

    def __init__(self, html: str, element_id: str) -> None:
        super().__init__()
        self.element_id, self.depth, self.parts = element_id, 0, []
        self.values: dict[str, list[str]] = {}
        self.checked: list[str] = []
        self.feed(html)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if self.depth:
            if tag not in {"input", "br", "meta", "link"}:
                self.depth += 1
            if tag in {"input", "option", "button"} and values.get("value"):
                self.values.setdefault(str(values.get("name") or tag), []).append(
                    str(values["value"])
                )
            if tag == "input" and "checked" in values:
                self.checked.append(str(values.get("value")))
        elif values.get("id") == self.element_id:
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.parts.append(data)


def section(response: Any, element_id: str) -> Section:
    check_page(response)
    found = Section(response.text, element_id)
    assert found.parts, f"no #{element_id} on the page"
    return found


def seeded(db: Session) -> seed.SeedReport:
    report = seed.load_seed(session=db, ctx=SYSTEM)
    db.expire_all()
    return report


def delivered_case(
    client: TestClient, patient: Account, specialist: Account, guide_options: list[str]
) -> dict[str, Any]:
    """A Russian spine case whose signed opinion links ``guide_options``."""
    case = ready_case(client, patient, language="ru")
    assert submit(client, patient, case["id"])["status"] == "assigned"
    url = f"/api/cases/{case['id']}"
    assert client.post(f"{url}/accept", headers=specialist.headers).status_code == 200
    body = {**OPINION, "recommendations": {**OPINION["recommendations"]}}
    body["recommendations"]["guide_options"] = guide_options
    saved = client.put(f"{url}/opinion", json=body, headers=specialist.headers)
    assert saved.status_code == 200, saved.text
    signed = client.post(
        f"{url}/opinion/sign",
        json={"password": specialist.password, "otp": specialist.next_otp()},
        headers=specialist.headers,
    )
    assert signed.status_code == 200, signed.text
    return case


def count(db: Session, model: Any) -> int:
    found = len(db.exec(select(model)).all())
    db.rollback()  # end the read: SQLite writers wait for it
    return found


def option_fields(db: Session, slug: str) -> dict[str, Any]:
    row = db.exec(select(TreatmentOption).where(TreatmentOption.slug == slug)).one()
    fields = row.model_dump()
    db.rollback()
    return fields


# --- the guide ------------------------------------------------------------------------------------


def test_the_seed_loads_once_keeps_edits_and_overwrites_only_when_asked(
    db: Session, settings: Settings, capsys
):
    first = seeded(db)
    assert (first.created, first.updated) == (1 + 5 + 3 + 13, 0)
    assert [count(db, m) for m in GUIDE_TABLES] == [1, 5, 3, 13]
    vertebroplasty = db.exec(
        select(TreatmentOption).where(TreatmentOption.slug == "vertebroplasty")
    ).one()
    assert (vertebroplasty.price_min, vertebroplasty.price_max) == (800, 1800)
    assert vertebroplasty.currency == "USD" and vertebroplasty.price_set_on == date(2026, 12, 1)
    assert vertebroplasty.texts["ru"]["name"] == "Вертебропластика"
    surgery = db.exec(
        select(TreatmentOption).where(TreatmentOption.slug == "surgical-removal")
    ).one()
    assert (surgery.price_min, surgery.price_max) == (None, 3800)

    again = seeded(db)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 22)
    assert [count(db, m) for m in GUIDE_TABLES] == [1, 5, 3, 13]

    # A coordinator's new price survives the next load; --overwrite brings the file's back.
    vertebroplasty.price_max = 2000
    db.add(vertebroplasty)
    db.commit()
    assert admin_commands.seed_treatment_guide(settings) == 0
    assert "0 added, 0 updated, 22 unchanged" in capsys.readouterr().out
    db.expire_all()
    assert db.get(TreatmentOption, vertebroplasty.id).price_max == 2000
    db.rollback()  # end the read: SQLite writers wait for it
    assert admin_commands.seed_treatment_guide(settings, overwrite=True) == 0
    assert "0 added, 1 updated, 21 unchanged" in capsys.readouterr().out
    db.expire_all()
    assert db.get(TreatmentOption, vertebroplasty.id).price_max == 1800
    loads = db.exec(select(AuditEvent).where(AuditEvent.action == "treatment.guide.seed")).all()
    assert len(loads) == 4


def test_coordinators_edit_the_guide_and_bad_input_changes_nothing(
    client: TestClient, accounts: Accounts, db: Session
):
    seeded(db)
    coordinator = accounts.staff(Role.coordinator)
    patient = accounts.patient()
    browser_sign_in(client, patient)
    assert client.get("/treatment/guide").status_code == 403
    client.cookies.clear()
    browser_sign_in(client, coordinator)
    page = check_page(client.get("/treatment/guide"))
    assert "/treatment/guide/options/vertebroplasty" in page.links
    form = check_page(client.get("/treatment/guide/options/vertebroplasty")).form(
        "/treatment/guide/options"
    )
    assert form["inputs"]["slug"] == "vertebroplasty" and form["inputs"]["price_min"] == "800"
    assert form["inputs"]["price_set_on"] == "2026-12-01"
    fields = {  # what a browser sends back: the form as shown, with the coordinator's changes
        "csrf_token": form["inputs"]["csrf_token"],
        "slug": "vertebroplasty",
        "condition": "spinal-hemangioma",
        "position": "20",
        "name_en": "Vertebroplasty",
        "description_en": "Bone cement strengthens the vertebra.",
        "name_ru": "Вертебропластика",
        "description_ru": "",
        "price_min": "800",
        "price_max": "1 800",
        "currency": "USD",
        "price_set_on": "2026-12-01",
    }

    def option_saved(**changes: str) -> Any:
        return client.post(
            "/treatment/guide/options", data={**fields, **changes}, follow_redirects=False
        )

    before = option_fields(db, "vertebroplasty")
    bad = [
        ({"price_min": "2000", "price_max": "1000"}, "lowest price"),
        ({"currency": "XYZ"}, "currency"),
        ({"price_set_on": (utcnow().date() + timedelta(days=3)).isoformat()}, "future"),
        ({"price_min": "lots"}, "price_min"),
        ({"condition": "no-such-condition"}, "no condition"),
        ({"name_en": ""}, "name"),
    ]
    for changes, words in bad:
        refused = option_saved(**changes, name_ru="Новое имя")
        assert refused.status_code == 422, (changes, refused.text)
        assert words in refused.text, (changes, refused.text)
    after = option_fields(db, "vertebroplasty")
    assert after["texts"] == before["texts"] and after["price_min"] == before["price_min"] == 800

    saved = option_saved(price_min="900", name_ru="Вертебропластика (цементирование)")
    assert saved.status_code == 303, saved.text
    after = option_fields(db, "vertebroplasty")
    assert after["price_min"] == 900 and after["price_max"] == 1800
    assert after["texts"]["ru"] == {"name": "Вертебропластика (цементирование)", "description": ""}
    assert after["texts"]["en"]["description"] == "Bone cement strengthens the vertebra."

    token = fields["csrf_token"]
    clinic = {
        "csrf_token": token,
        "slug": "ava-kazan",
        "name_en": "AVA Clinic Kazan",
        "city_en": "Kazan",
        "country": "ZZ",
        "languages": "en, ru",
        "active": "on",
    }
    assert client.post("/treatment/guide/clinics", data=clinic).status_code == 422
    assert db.exec(select(Clinic).where(Clinic.slug == "ava-kazan")).first() is None
    db.rollback()
    created = client.post(
        "/treatment/guide/clinics", data={**clinic, "country": "ru"}, follow_redirects=False
    )
    assert created.status_code == 303
    offer = {"csrf_token": token, "option": "embolization", "price_min": "1300", "currency": "usd"}
    missing_day = client.post("/treatment/guide/clinics/ava-kazan/offers", data=offer)
    assert missing_day.status_code == 422 and "which day" in missing_day.text
    added = client.post(
        "/treatment/guide/clinics/ava-kazan/offers",
        data={**offer, "price_set_on": "2026-12-01"},
        follow_redirects=False,
    )
    assert added.status_code == 303
    offers = section(client.get("/treatment/guide/clinics/ava-kazan"), "offers")
    assert "Embolization" in offers.text and "from US$1,300" in offers.text
    removed = client.post(
        "/treatment/guide/clinics/ava-kazan/offers/embolization/remove",
        data={"csrf_token": token},
        follow_redirects=False,
    )
    assert removed.status_code == 303
    assert count(db, ClinicOffer) == 13
    actions = [
        event.action
        for event in db.exec(
            select(AuditEvent).where(col(AuditEvent.action).startswith("treatment."))
        ).all()
    ]
    for action in ("option.save", "clinic.save", "offer.save", "offer.remove"):
        assert f"treatment.{action}" in actions


def test_the_json_guide_speaks_the_callers_language(
    client: TestClient, accounts: Accounts, db: Session
):
    seeded(db)
    patient = accounts.patient()
    english = client.get("/api/treatment/guide", headers=patient.headers).json()
    russian = client.get(
        "/api/treatment/guide", headers={**patient.headers, "Accept-Language": "ru"}
    ).json()
    assert english["next"] is None and [c["slug"] for c in english["items"]] == [
        "spinal-hemangioma"
    ]
    options = {o["slug"]: o for o in english["items"][0]["options"]}
    assert options["vertebroplasty"]["price"]["text"] == "US$800 – US$1,800"
    assert options["observation"]["price"]["text"] == "from US$60"
    assert options["surgical-removal"]["price"]["text"] == "up to US$3,800"
    assert options["radiotherapy"]["price"]["text"] == "price on request"
    assert russian["items"][0]["name"] == "Гемангиома позвоночника (позвонка)"
    clinics = {o["clinic"]: o for o in russian["items"][0]["options"][1]["offers"]}
    assert clinics["emc"]["city"] == "Москва" and clinics["emc"]["country"] == "Россия"
    assert client.get("/api/treatment/guide?limit=0", headers=patient.headers).status_code == 422


# --- the opinion ------------------------------------------------------------------------------


def test_a_specialist_links_guide_options_and_the_signature_still_verifies(
    client: TestClient, accounts: Accounts, team: Team, db: Session
):
    seeded(db)
    patient, specialist = accounts.patient(language="ru"), team.spine_ru
    case = ready_case(client, patient, language="ru")
    submit(client, patient, case["id"])
    url = f"/api/cases/{case['id']}"
    assert client.post(f"{url}/accept", headers=specialist.headers).status_code == 200
    body = {**OPINION, "recommendations": {**OPINION["recommendations"]}}
    body["recommendations"]["guide_options"] = ["vertebroplasty", "made-up"]
    refused = client.put(f"{url}/opinion", json=body, headers=specialist.headers)
    assert refused.status_code == 422 and "made-up" in refused.json()["detail"]
    # Ticked in any order, stored once each in the guide's order.
    body["recommendations"]["guide_options"] = ["embolization", "vertebroplasty", "embolization"]
    saved = client.put(f"{url}/opinion", json=body, headers=specialist.headers)
    assert saved.status_code == 200
    assert saved.json()["content"]["recommendations"]["guide_options"] == LINKED

    browser_sign_in(client, specialist)
    editor = section(client.get(f"/cases/{case['id']}/opinion/edit"), "guide-options")
    assert set(editor.values["guide_options"]) == {
        "observation",
        "vertebroplasty",
        "embolization",
        "radiotherapy",
        "surgical-removal",
    }
    assert editor.checked == LINKED
    token = check_page(client.get(f"/cases/{case['id']}/opinion/edit")).form(
        f"/cases/{case['id']}/opinion"
    )["inputs"]["csrf_token"]
    posted = client.post(
        f"/cases/{case['id']}/opinion",
        data={
            "csrf_token": token,
            "summary": OPINION["summary"],
            "findings": OPINION["findings"],
            "impression": OPINION["impression"],
            "answers": "Да, типичная.",
            "urgency": "routine",
            "guide_options": ["vertebroplasty", "embolization"],
        },
        follow_redirects=False,
    )
    assert posted.status_code == 303, posted.text
    client.cookies.clear()

    signed = client.post(
        f"{url}/opinion/sign",
        json={"password": specialist.password, "otp": specialist.next_otp()},
        headers=specialist.headers,
    )
    assert signed.status_code == 200, signed.text
    opinion = db.exec(select(Opinion).where(Opinion.case_id == uuid.UUID(case["id"]))).one()
    canonical = texts.for_case(session=db, case_id=opinion.case_id).open(opinion, "canonical")
    assert canonical is not None
    assert hashlib.sha256(canonical.encode()).hexdigest() == signed.json()["content_sha256"]
    assert json.loads(canonical)["content"]["recommendations"]["guide_options"] == LINKED
    # Content written before links existed still reads, with no links.
    old = OpinionContent.model_validate({"recommendations": {"treatment_options": "Observation."}})
    assert old.recommendations.guide_options == []


def test_an_opinion_without_links_keeps_its_canonical_form(
    client: TestClient, accounts: Accounts, team: Team, db: Session
):
    seeded(db)
    patient = accounts.patient(language="ru")
    case = delivered_case(client, patient, team.spine_ru, guide_options=[])
    opinion = db.exec(select(Opinion).where(Opinion.case_id == uuid.UUID(case["id"]))).one()
    canonical = texts.for_case(session=db, case_id=opinion.case_id).open(opinion, "canonical")
    assert canonical is not None and "guide_options" not in canonical
    db.rollback()
    page = client.get(f"/api/cases/{case['id']}/treatment-requests", headers=patient.headers)
    assert page.status_code == 200 and page.json() == {"items": [], "next": None}
    browser_sign_in(client, patient)
    assert 'id="treatment"' not in client.get(f"/cases/{case['id']}").text


# --- the patient and the coordinators -------------------------------------------------------------


def test_the_patient_sees_options_clinics_and_prices_in_russian(
    client: TestClient, accounts: Accounts, team: Team, db: Session
):
    seeded(db)
    patient = accounts.patient(language="ru")
    case = delivered_case(client, patient, team.spine_ru, LINKED)
    browser_sign_in(client, patient)
    panel = section(client.get(f"/cases/{case['id']}"), "treatment")

    def rub(amount: int) -> str:  # how Russian writes a dollar amount, without the cents
        text = format_currency(amount, "USD", locale="ru").replace(",00", "")
        return " ".join(text.split())  # as the page's text reads, spaces collapsed

    assert "Вертебропластика" in panel.text and "Эмболизация" in panel.text
    assert "Наблюдение" not in panel.text  # only what the opinion links
    assert "ЕМЦ (Европейский медицинский центр)" in panel.text and "Москва" in panel.text
    assert "Клиника «Скандинавия»" in panel.text and "Санкт-Петербург" in panel.text
    assert f"{rub(800)} – {rub(1800)}" in panel.text  # the guide's range
    assert f"{rub(1500)} – {rub(1800)}" in panel.text  # EMC's own
    day = " ".join(format_date(date(2026, 12, 1), format="medium", locale="ru").split())
    assert f"ориентировочно, установлена {day}" in panel.text
    assert "окончательную цену клиника назначает" in panel.text.lower()
    assert set(panel.values["option"]) == {"help", "emc", "scandinavia", "medsi"}  # the clinics
    assert "Запросить план лечения" in panel.text


def test_a_treatment_plan_request_from_form_to_answer_by_mail(
    client: TestClient,
    accounts: Accounts,
    team: Team,
    app: FastAPI,
    db: Session,
    settings: Settings,
    smtpd: SmtpServer,
):
    seeded(db)
    patient = accounts.patient(language="ru")
    other = accounts.patient()
    coordinator = team.coordinator
    case = delivered_case(client, patient, team.spine_ru, LINKED)
    case_id = case["id"]
    api = f"/api/cases/{case_id}/treatment-requests"
    start, end = utcnow().date() + timedelta(days=20), utcnow().date() + timedelta(days=30)

    # Nobody else may read or request: the case does not exist for them.
    for stranger in (other, team.cardiology_ru):
        assert client.get(api, headers=stranger.headers).status_code == 404
    travel = {"travel_from": start.isoformat(), "travel_to": end.isoformat()}
    assert client.post(api, json=travel, headers=other.headers).status_code == 404
    assert client.post(api, json=travel, headers=team.spine_ru.headers).status_code == 403

    browser_sign_in(client, patient)
    form = check_page(client.get(f"/cases/{case_id}")).form(f"/cases/{case_id}/treatment-requests")
    token = form["inputs"]["csrf_token"]
    fields = {"csrf_token": token, "clinic": "emc", **travel, "notes": NOTES}
    yesterday = (utcnow().date() - timedelta(days=1)).isoformat()
    for changes, words in [
        ({"travel_from": yesterday}, "не может быть в прошлом"),
        ({"travel_to": (start - timedelta(days=1)).isoformat()}, "раньше дня приезда"),
        ({"travel_from": "soon"}, "travel_from"),
        ({"clinic": "nowhere"}, "не предлагает"),
    ]:
        refused = client.post(f"/cases/{case_id}/treatment-requests", data={**fields, **changes})
        assert refused.status_code == 422, (changes, refused.text)
        assert words in refused.text, (changes, refused.text)
    assert count(db, TreatmentRequest) == 0
    sent = client.post(f"/cases/{case_id}/treatment-requests", data=fields, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"].endswith("done=treatment_requested")
    again = client.post(f"/cases/{case_id}/treatment-requests", data=fields)
    assert again.status_code == 409
    panel = section(client.get(f"/cases/{case_id}"), "treatment")
    assert "отправлен" in panel.text and NOTES in panel.text
    assert "treatment-request-form" not in client.get(f"/cases/{case_id}").text  # one at a time
    client.cookies.clear()

    # The coordinators hear of it, with a link and nothing clinical.
    notifications.deliver_pending(engine=app.state.engine, mail=smtpd.mail())
    to_coordinator = [m for m in smtpd.received if m.rcpt_tos == [coordinator.email]]
    assert len(to_coordinator) == 1
    mail = to_coordinator[0]
    assert mail.message["Subject"] == f"Treatment plan requested: {case['reference']}"
    assert f"{settings.base_url}/cases/{case_id}" in mail.body
    for private in (NOTES, "Вертебропластика", "vertebroplasty", "EMC", patient.full_name):
        assert private not in mail.body and private not in mail.message["Subject"]

    listed = client.get("/api/treatment-requests?status=requested", headers=coordinator.headers)
    assert listed.status_code == 200
    (item,) = listed.json()["items"]
    assert item["case_reference"] == case["reference"] and item["clinic"]["slug"] == "emc"
    assert item["options"] == LINKED and item["notes"] == NOTES
    request_url = f"/api/treatment-requests/{item['id']}"
    assert client.get(request_url, headers=other.headers).status_code == 404
    assert client.get("/api/treatment-requests", headers=patient.headers).status_code == 403
    # The case's specialist reads the request but does not answer it; the patient neither.
    assert client.get(request_url, headers=team.spine_ru.headers).status_code == 200
    for who in (team.spine_ru, patient):
        answer = {"status": "answered", "answer": ANSWER}
        moved = client.post(f"{request_url}/status", json=answer, headers=who.headers)
        assert moved.status_code == 403
    closing_early = {"status": "closed"}
    assert (
        client.post(f"{request_url}/status", json=closing_early, headers=patient.headers)
    ).status_code == 409

    browser_sign_in(client, coordinator)
    listing = section(client.get("/treatment/requests?status=requested"), "treatment-requests")
    assert case["reference"] in listing.text
    assert client.get("/treatment/requests?status=bogus").status_code == 422
    page = check_page(client.get(f"/treatment/requests/{item['id']}"))
    status_url = f"/treatment/requests/{item['id']}/status"
    token = page.form(status_url)["inputs"]["csrf_token"]
    taken = client.post(status_url, data={"csrf_token": token, "status": "in_progress"})
    assert taken.status_code == 200 and "in progress" in taken.text
    blank = client.post(status_url, data={"csrf_token": token, "status": "answered"})
    assert blank.status_code == 422
    answered = client.post(
        status_url,
        data={"csrf_token": token, "status": "answered", "answer": ANSWER},
        follow_redirects=False,
    )
    assert answered.status_code == 303
    assert ANSWER in section(client.get(answered.headers["location"]), "treatment-answer").text
    client.cookies.clear()

    smtpd.received.clear()
    notifications.deliver_pending(engine=app.state.engine, mail=smtpd.mail())
    (to_patient,) = smtpd.received
    assert to_patient.rcpt_tos == [patient.email]
    # In the patient's language (Russian), as every mail to them.
    assert to_patient.message["Subject"] == "Получен ответ на ваш запрос плана лечения"
    assert ANSWER not in to_patient.body and f"/cases/{case_id}" in to_patient.body

    browser_sign_in(client, patient)
    panel = section(client.get(f"/cases/{case_id}"), "treatment")
    assert ANSWER in panel.text and "получен ответ" in panel.text
    assert "closed" in panel.values["status"]
    token = check_page(client.get(f"/cases/{case_id}")).form(status_url)["inputs"]["csrf_token"]
    closed = client.post(
        status_url,
        data={"csrf_token": token, "status": "closed", "back": "case"},
        follow_redirects=False,
    )
    assert closed.status_code == 303 and closed.headers["location"].startswith(f"/cases/{case_id}")
    final = client.get(request_url, headers=coordinator.headers).json()
    assert final["status"] == "closed" and final["answer"] == ANSWER

    events = db.exec(
        select(AuditEvent)
        .where(AuditEvent.case_id == uuid.UUID(case_id))
        .where(col(AuditEvent.action).startswith("treatment.request"))
        .order_by(col(AuditEvent.id))
    ).all()
    moves = [json.loads(e.details).get("to") for e in events if e.action.endswith(".status")]
    assert "treatment.request" in [e.action for e in events]
    assert moves == ["in_progress", "answered", "closed"]
    assert all(NOTES not in e.details and ANSWER not in e.details for e in events)
    kinds = {
        (m.kind, m.recipient_id)
        for m in db.exec(select(OutboxMessage).where(OutboxMessage.case_id == uuid.UUID(case_id)))
    }
    assert (NotificationKind.treatment_answered, patient.user_id) in kinds
    assert (NotificationKind.treatment_requested, coordinator.user_id) in kinds
    # Sealed, like the case's other free text.
    row = db.exec(select(TreatmentRequest)).one()
    assert row.notes_sealed is not None and NOTES.encode() not in row.notes_sealed
