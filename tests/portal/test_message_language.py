"""Messages the API returns (errors, refusals, upload rejections) in the caller's language."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from portal.cases.consent import CURRENT_VERSION
from tests.fixtures.app import Accounts, open_case
from tests.portal.test_pages import browser_sign_in

RU = {"accept-language": "ru-RU,ru;q=0.9"}


def test_api_errors_are_in_russian_when_asked_and_english_otherwise(
    client: TestClient, accounts: Accounts
):
    patient = accounts.patient()
    case = open_case(client, patient)
    submit = f"/api/cases/{case['id']}/submit"

    no_consent = client.post(submit, headers=patient.headers | RU)
    assert no_consent.status_code == 409
    assert no_consent.json()["detail"] == "Перед отправкой обращения примите текст согласия."
    english = client.post(submit, headers=patient.headers)
    assert english.json()["detail"] == "Accept the consent text before submitting the case."

    client.post(
        f"/api/cases/{case['id']}/consent",
        json={"accepted": True, "version": CURRENT_VERSION},
        headers=patient.headers,
    )
    no_files = client.post(submit, headers=patient.headers | RU)
    assert no_files.status_code == 409
    assert "загрузите хотя бы одно изображение или документ" in no_files.json()["detail"]

    unknown = f"/api/cases/{uuid.uuid4()}"
    assert client.get(unknown, headers=patient.headers | RU).json() == {
        "detail": "Обращение не найдено."
    }
    assert client.get(unknown, headers=patient.headers).json() == {"detail": "Case not found."}


def test_a_json_body_that_lacks_a_field_is_described_in_the_callers_language(
    client: TestClient, accounts: Accounts
):
    patient = accounts.patient()
    body = {"subject": "", "body_region": "knee"}
    russian = client.post("/api/cases", json=body, headers=patient.headers | RU)
    assert russian.status_code == 422
    detail = russian.json()["detail"]
    assert "clinical_question: обязательное поле" in detail
    assert "body_region: допустимые значения — " in detail and "'spine'" in detail
    assert "should" not in detail and "required" not in detail
    english = client.post("/api/cases", json=body, headers=patient.headers).json()["detail"]
    assert "clinical_question is required" in english and "body_region must be one of" in english
    not_json = client.post(
        "/api/cases",
        content=b"{",
        headers=patient.headers | RU | {"content-type": "application/json"},
    )
    assert not_json.json() == {"detail": "Тело запроса не является корректным JSON."}


def test_a_refused_upload_is_explained_in_the_uploaders_language(
    client: TestClient, accounts: Accounts
):
    patient = accounts.patient()
    case = open_case(client, patient)
    files = [("files", ("notes.txt", b"just some words, not an image", "text/plain"))]
    url = f"/api/cases/{case['id']}/files"
    russian = client.post(url, files=files, headers=patient.headers | RU).json()
    assert russian["accepted"] == []
    assert russian["rejected"] == [
        {
            "filename": "notes.txt",
            "reason": "Этот файл не является изображением DICOM, PDF, JPEG или PNG "
            "либо ZIP-архивом с ними.",
        }
    ]
    english = client.post(url, files=files, headers=patient.headers).json()
    assert english["rejected"][0]["reason"] == (
        "This file is not a DICOM image, PDF, JPEG or PNG, or a ZIP archive of those."
    )


def test_a_program_with_a_token_hears_its_accounts_language_unless_it_asks_for_another(
    client: TestClient, accounts: Accounts
):
    patient = accounts.patient(language="ru")
    unknown = f"/api/cases/{uuid.uuid4()}"
    assert client.get(unknown, headers=patient.headers).json()["detail"] == (
        "Обращение не найдено."
    )
    asked = client.get(unknown, headers=patient.headers | {"accept-language": "en-GB"})
    assert asked.json()["detail"] == "Case not found."
    # A language the portal does not speak leaves the account's.
    german = client.get(unknown, headers=patient.headers | {"accept-language": "de"})
    assert german.json()["detail"] == "Обращение не найдено."


def test_a_browser_hears_its_accounts_language_before_accept_language(
    client: TestClient, accounts: Accounts
):
    browser_sign_in(client, accounts.patient(language="ru"))
    unknown = f"/api/cases/{uuid.uuid4()}"
    answer = client.get(unknown, headers={"accept-language": "en"})
    assert answer.status_code == 404 and answer.json()["detail"] == "Обращение не найдено."
