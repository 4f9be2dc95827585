"""FHIR R4 exports, on SQLite and PostgreSQL through the real API: a delivered opinion as a
document bundle that validates with ``fhir.resources`` and resolves every reference inside
itself, who may fetch it, and the audit trail as AuditEvents one for one with the JSON list."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

from portal.accounts.models import Role
from portal.cases.consent import CURRENT_VERSION
from portal.i18n import gettext, speaking
from portal.settings import Settings
from reviewers.fhir import audit_events
from reviewers.fhir.service import NotDelivered
from tests.fixtures.app import Account, Accounts
from tests.portal import samples
from tests.reviewers.conftest import Team, ready_case, submit, upload
from tests.reviewers.test_journey import OPINION

QUESTION = "Is the T11 lesion a typical hemangioma, and does it need treatment?"


def delivered_case(client: TestClient, patient: Account, specialist: Account) -> dict[str, Any]:
    """A Russian spine case with a CT series and a PDF record, its opinion signed."""
    case = ready_case(client, patient, language="ru", clinical_question=QUESTION)
    upload(client, patient, case["id"], ("discharge-summary.pdf", samples.pdf(pages=1)))
    assert submit(client, patient, case["id"])["status"] == "assigned"
    url = f"/api/cases/{case['id']}"
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


def fetch_document(client: TestClient, who: Account, case_id: str) -> dict[str, Any]:
    response = client.get(f"/api/cases/{case_id}/fhir", headers=who.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/fhir+json"
    return dict(response.json())


def resources_of(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [
        entry["resource"]
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == resource_type
    ]


def references(value: Any) -> list[str]:
    """Every ``reference`` string anywhere in ``value``."""
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return found + [ref for item in value.values() for ref in references(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in references(item)]
    return []


def test_a_delivered_opinion_is_a_valid_self_contained_fhir_document(
    client: TestClient, accounts: Accounts, team: Team, settings: Settings
):
    patient = accounts.patient(language="ru")
    case = delivered_case(client, patient, team.spine_ru)
    bundle = fetch_document(client, patient, case["id"])

    # Valid by the R4B models, as a whole and entry by entry.
    Bundle.model_validate(bundle)
    for entry in bundle["entry"]:
        model = get_fhir_model_class(entry["resource"]["resourceType"])
        model.model_validate(entry["resource"])
    assert bundle["type"] == "document"
    assert bundle["identifier"]["value"].startswith("urn:uuid:") and bundle["timestamp"]
    kinds = [entry["resource"]["resourceType"] for entry in bundle["entry"]]
    assert kinds[0] == "Composition"
    for kind in ("Patient", "Practitioner", "ServiceRequest", "Consent", "Endpoint"):
        assert kinds.count(kind) == 1, kind
    for kind in ("ImagingStudy", "DocumentReference", "DiagnosticReport", "Provenance"):
        assert kind in kinds, kind

    # Every reference resolves inside the bundle; every fullUrl is unique.
    full_urls = [entry["fullUrl"] for entry in bundle["entry"]]
    assert len(set(full_urls)) == len(full_urls)
    found = references(bundle)
    assert found and set(found) <= set(full_urls), set(found) - set(full_urls)

    # The studies are the ones the portal lists, series by series.
    listed = client.get(f"/api/cases/{case['id']}/studies", headers=patient.headers).json()
    studies = resources_of(bundle, "ImagingStudy")
    assert len(studies) == len(listed["studies"]) >= 1
    for study, expected in zip(studies, listed["studies"], strict=True):
        assert study["identifier"][0] == {
            "system": "urn:dicom:uid",
            "value": f"urn:oid:{expected['study_instance_uid']}",
        }
        assert study["numberOfSeries"] == len(expected["series"])
        assert study["numberOfInstances"] == sum(s["instances"] for s in expected["series"])
        assert {s["uid"]: s["numberOfInstances"] for s in study["series"]} == {
            s["series_instance_uid"]: s["instances"] for s in expected["series"]
        }
        assert {s["modality"]["code"] for s in study["series"]} == {"CT"}
        assert all(
            s["modality"]["system"] == "http://dicom.nema.org/resources/ontology/DCM"
            for s in study["series"]
        )
    (endpoint,) = resources_of(bundle, "Endpoint")
    dicomweb = f"{settings.base_url.rstrip('/')}/api/cases/{case['id']}/dicomweb"
    assert endpoint["address"] == dicomweb
    assert endpoint["connectionType"]["code"] == "dicom-wado-rs"
    assert (
        client.get(urlsplit(dicomweb).path + "/studies", headers=patient.headers).status_code == 200
    )

    # The signed report: its conclusion, its PDF (the very bytes the patient downloads).
    opinion = client.get(f"/api/cases/{case['id']}/opinion", headers=patient.headers).json()
    (report,) = resources_of(bundle, "DiagnosticReport")
    assert report["status"] == "final"
    assert report["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "18748-4",
        "display": "Diagnostic imaging study",
    }
    assert report["conclusion"] == OPINION["impression"]
    (form,) = report["presentedForm"]
    pdf = base64.b64decode(form["data"])
    downloaded = client.get(f"/api/cases/{case['id']}/opinion.pdf", headers=patient.headers)
    assert pdf == downloaded.content and pdf.startswith(b"%PDF-")
    assert form["contentType"] == "application/pdf" and form["size"] == len(pdf)
    assert base64.b64decode(form["hash"]) == hashlib.sha1(pdf).digest()  # noqa: S324

    # The signature's provenance carries the SHA-256 of the signed content.
    (provenance,) = resources_of(bundle, "Provenance")
    (entity,) = provenance["entity"]
    assert entity["what"]["identifier"]["value"] == opinion["content_sha256"]
    assert provenance["signature"][0]["when"] and provenance["recorded"]
    (practitioner,) = resources_of(bundle, "Practitioner")
    assert practitioner["name"][0]["text"] == opinion["signer_name"]
    assert practitioner["qualification"][0]["code"]["text"] == "Spine surgeon, licence RU-77-0001"

    # The patient's request, consent and record.
    (request,) = resources_of(bundle, "ServiceRequest")
    assert request["note"][0]["text"] == QUESTION
    assert request["bodySite"][0]["coding"][0]["code"] == "421060004"
    assert request["priority"] == "routine" and request["status"] == "completed"
    (consent,) = resources_of(bundle, "Consent")
    assert consent["policyRule"]["coding"][0]["code"] == CURRENT_VERSION
    files = client.get(f"/api/cases/{case['id']}/files", headers=patient.headers).json()
    pdf_file = next(item for item in files["items"] if item["kind"] == "pdf")
    (record,) = resources_of(bundle, "DocumentReference")
    attachment = record["content"][0]["attachment"]
    assert attachment["url"].endswith(f"/api/cases/{case['id']}/files/{pdf_file['id']}/content")
    assert (attachment["contentType"], attachment["size"]) == ("application/pdf", pdf_file["size"])

    # The composition speaks the case's language.
    composition = bundle["entry"][0]["resource"]
    with speaking("ru"):
        findings_title = gettext("Imaging findings")
    assert composition["language"] == "ru"
    opinion_section = composition["section"][-1]
    assert findings_title in [s["title"] for s in opinion_section["section"]]
    assert opinion_section["entry"] == [{"reference": full_urls[kinds.index("DiagnosticReport")]}]

    # The same export again is the same document; each export is audited once.
    assert fetch_document(client, patient, case["id"]) == bundle
    trail = client.get(
        "/api/audit",
        params={"case_id": case["id"], "limit": 500},
        headers=team.coordinator.headers,
    ).json()["items"]
    exports = [item for item in trail if item["action"] == "fhir.document"]
    assert len(exports) == 2 and all(item["entity_type"] == "opinion" for item in exports)


def test_an_addendum_makes_a_new_version_of_the_document(
    client: TestClient, accounts: Accounts, team: Team
):
    patient = accounts.patient(language="ru")
    case = delivered_case(client, patient, team.spine_ru)
    first = fetch_document(client, patient, case["id"])
    note = "Compared with the MRI of 2025: unchanged."
    added = client.post(
        f"/api/cases/{case['id']}/opinion/addenda",
        json={"text": note},
        headers=team.spine_ru.headers,
    )
    assert added.status_code == 201, added.text

    second = fetch_document(client, patient, case["id"])
    Bundle.model_validate(second)
    assert second["identifier"] != first["identifier"]
    assert datetime.fromisoformat(second["timestamp"]) > datetime.fromisoformat(first["timestamp"])
    composition = second["entry"][0]["resource"]
    assert composition["status"] == "amended"
    (report,) = resources_of(second, "DiagnosticReport")
    assert report["status"] == "appended"
    with speaking("ru"):
        addenda_title = gettext("Addenda")
    (addenda,) = [s for s in composition["section"][-1]["section"] if s["title"] == addenda_title]
    assert addenda["code"]["coding"][0]["code"] == "55107-7"
    assert note in addenda["text"]["div"]
    # The signature still covers what was signed; the PDF now prints the addendum too.
    (provenance,) = resources_of(second, "Provenance")
    assert provenance == resources_of(first, "Provenance")[0]
    assert (
        report["presentedForm"][0]["data"]
        != resources_of(first, "DiagnosticReport")[0]["presentedForm"][0]["data"]
    )


def test_plain_json_is_offered_and_other_formats_refused(
    client: TestClient, accounts: Accounts, team: Team
):
    patient = accounts.patient(language="ru")
    case = delivered_case(client, patient, team.spine_ru)
    url = f"/api/cases/{case['id']}/fhir"
    plain = client.get(url, headers={**patient.headers, "Accept": "application/json"})
    assert plain.status_code == 200 and plain.headers["content-type"] == "application/json"
    Bundle.model_validate(plain.json())
    refused = client.get(url, headers={**patient.headers, "Accept": "application/fhir+xml"})
    assert refused.status_code == 406 and "application/fhir+json" in refused.json()["detail"]


def test_who_may_fetch_the_document(client: TestClient, accounts: Accounts, team: Team):
    patient = accounts.patient(language="ru")
    case = ready_case(client, patient, language="ru")
    url = f"/api/cases/{case['id']}/fhir"
    submit(client, patient, case["id"])

    before = client.get(url, headers=patient.headers)
    with speaking("ru"):  # the patient's language
        not_yet = gettext(NotDelivered.default_message)
    assert before.status_code == 409 and before.json()["detail"] == not_yet
    assert client.get(url, headers=team.coordinator.headers).status_code == 409

    specialist = team.spine_ru
    assert (
        client.post(f"/api/cases/{case['id']}/accept", headers=specialist.headers).status_code
        == 200
    )
    assert (
        client.put(
            f"/api/cases/{case['id']}/opinion", json=OPINION, headers=specialist.headers
        ).status_code
        == 200
    )
    signed = client.post(
        f"/api/cases/{case['id']}/opinion/sign",
        json={"password": specialist.password, "otp": specialist.next_otp()},
        headers=specialist.headers,
    )
    assert signed.status_code == 200, signed.text

    for allowed in (patient, specialist, team.coordinator):
        assert client.get(url, headers=allowed.headers).status_code == 200
    nowhere = f"/api/cases/{team.coordinator.user_id}/fhir"  # no case has this id
    for stranger in (accounts.patient(), team.spine_en):
        answer = client.get(url, headers=stranger.headers)
        missing = client.get(nowhere, headers=stranger.headers)
        assert answer.status_code == missing.status_code == 404
        assert answer.json() == missing.json()
    assert client.get(url, headers=accounts.staff(Role.admin).headers).status_code == 403
    assert client.get(url).status_code == 401


def audit_json(client: TestClient, who: Account, case_id: str) -> list[dict[str, Any]]:
    answer = client.get(
        "/api/audit", params={"case_id": case_id, "limit": 500}, headers=who.headers
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def test_audit_events_match_the_json_trail_one_for_one(
    client: TestClient, accounts: Accounts, team: Team
):
    patient = accounts.patient(language="ru")
    case = delivered_case(client, patient, team.spine_ru)
    fetch_document(client, patient, case["id"])
    coordinator = team.coordinator
    listed = audit_json(client, coordinator, case["id"])

    answer = client.get(
        "/api/audit/fhir", params={"case_id": case["id"], "limit": 500}, headers=coordinator.headers
    )
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/fhir+json"
    bundle = answer.json()
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset"
    events = [entry["resource"] for entry in bundle["entry"]]
    for event in events:
        AuditEvent.model_validate(event)
    # The JSON list's own reading is the newest row here; the rest are the same rows.
    newest, *rest = events
    assert newest["subtype"][0]["code"] == "audit.read"
    assert [event["id"] for event in rest] == [str(item["id"]) for item in listed]
    by_id = {str(item["id"]): item for item in listed}
    for event in rest:
        row = by_id[event["id"]]
        assert event["subtype"][0]["code"] == row["action"]
        assert (event["outcome"] == "0") is (row["outcome"] == "success")
        (agent,) = event["agent"]
        who = agent["who"].get("identifier", {}).get("value")
        assert who == (f"urn:uuid:{row['actor_id']}" if row["actor_id"] else None)
        assert agent["requestor"] is (row["actor_id"] is not None)
        case_entities = [e for e in event.get("entity", []) if e.get("description") == "case"]
        assert case_entities[0]["what"]["identifier"]["value"] == f"urn:uuid:{case['id']}"
    by_action = {event["subtype"][0]["code"]: event for event in rest}
    assert by_action["opinion.sign"]["action"] == "U"
    assert by_action["fhir.document"]["type"]["code"] == "110106"  # DICOM "Export"
    assert by_action["file.upload"]["action"] == "C"

    refused = client.get("/api/audit/fhir", params={"case_id": case["id"]}, headers=patient.headers)
    assert refused.status_code == 403


def test_audit_events_page_with_next_links(client: TestClient, accounts: Accounts, team: Team):
    patient = accounts.patient()
    case = ready_case(client, patient)
    submit(client, patient, case["id"])
    coordinator = team.coordinator
    listed = [str(item["id"]) for item in audit_json(client, coordinator, case["id"])]
    assert len(listed) >= 6  # with the listing's own row: three pages of three

    walked: list[dict[str, Any]] = []
    url: str | None = f"/api/audit/fhir?case_id={case['id']}&limit=3"
    pages = 0
    while url is not None:
        answer = client.get(url, headers=coordinator.headers)
        assert answer.status_code == 200, answer.text
        bundle = answer.json()
        Bundle.model_validate(bundle)
        entries = [entry["resource"] for entry in bundle.get("entry", [])]
        assert len(entries) <= 3
        walked.extend(entries)
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert "limit=3" in links["self"]
        following = links.get("next")
        url = (
            None if following is None else f"{urlsplit(following).path}?{urlsplit(following).query}"
        )
        pages += 1
    assert pages == -(-(len(listed) + 1) // 3)
    # The first page starts with the JSON list's own reading; then the same rows in order.
    assert walked[0]["subtype"][0]["code"] == "audit.read"
    assert [event["id"] for event in walked[1:]] == listed

    bad = client.get(
        "/api/audit/fhir",
        params={"case_id": case["id"], "cursor": "nonsense"},
        headers=coordinator.headers,
    )
    assert bad.status_code == 400


@pytest.mark.parametrize(
    ("action", "event_type", "verb"),
    [
        ("auth.login", "110114", "E"),
        ("audit.read", "110101", "R"),
        ("dicomweb.retrieve", "110103", "R"),
        ("file.upload", "110107", "C"),
        ("opinion.download", "110106", "R"),
        ("fhir.document", "110106", "R"),
        ("case.list", "110112", "R"),
        ("case.break_glass", "110113", "E"),
        ("keys.rotate", "110100", "E"),
        ("opinion.sign", "110110", "U"),
        ("case.erase", "110110", "D"),
        ("treatment.request", "110110", "C"),
    ],
)
def test_portal_actions_map_to_audit_event_types_and_actions(
    action: str, event_type: str, verb: str
):
    assert audit_events.event_type(action)[1] == event_type
    assert audit_events.event_action(action) == verb
