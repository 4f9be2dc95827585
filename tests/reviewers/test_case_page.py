"""The case page leads its patient: where the case stands, the one thing to do next, the
opinion first once it is delivered, and a timeline in the patient's words — in both languages."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from portal.cases.models import CaseStatus
from portal.cases.progress import NextStep, StepState, next_step, steps
from portal.i18n import speaking
from tests.fixtures.app import Accounts, open_case
from tests.portal.test_pages import browser_sign_in, check_page, form_token
from tests.reviewers.conftest import Team, ready_case, submit

S = CaseStatus


def states(status: CaseStatus, *, consent: bool, files: bool) -> dict[str, str]:
    return {
        step.key: step.state.value for step in steps(status, consent_given=consent, has_files=files)
    }


def test_the_stepper_marks_what_is_done_and_the_one_step_that_is_next():
    assert states(S.draft, consent=False, files=False) == {
        "details": "done",
        "consent": "current",
        "files": "todo",
        "submitted": "todo",
        "review": "todo",
        "opinion": "todo",
    }
    assert states(S.draft, consent=True, files=False)["files"] == "current"
    assert states(S.draft, consent=True, files=True)["submitted"] == "current"
    assert states(S.in_review, consent=True, files=True)["review"] == "current"
    delivered = states(S.opinion_delivered, consent=True, files=True)
    assert set(delivered.values()) == {StepState.done.value}
    cancelled = states(S.cancelled, consent=True, files=False)
    assert "current" not in cancelled.values()
    with speaking("ru"):
        labels = [step.label for step in steps(S.draft, consent_given=False, has_files=False)]
    assert labels[-1] == "Заключение готово"


@pytest.mark.parametrize(
    ("status", "consent", "files", "waiting", "expected"),
    [
        (S.draft, False, True, 0, NextStep.consent),
        (S.draft, True, False, 0, NextStep.files),
        (S.draft, True, True, 0, NextStep.submit),
        (S.triage, True, True, 0, NextStep.wait_for_specialist),
        (S.in_review, True, True, 0, NextStep.wait_for_opinion),
        (S.info_requested, True, True, 1, NextStep.answer_question),
        (S.opinion_delivered, True, True, 0, NextStep.read_opinion),
        (S.cancelled, True, True, 0, NextStep.cancelled),
    ],
)
def test_one_next_step_for_each_situation(status, consent, files, waiting, expected):
    assert (
        next_step(status, consent_given=consent, has_files=files, questions_waiting=waiting)
        == expected
    )


def test_a_case_opened_with_consent_asks_for_files_not_for_consent(
    client: TestClient, accounts: Accounts
):
    """Opening a case with the consent box ticked said "Accept the consent text" all the same."""
    patient = accounts.patient()
    browser_sign_in(client, patient)
    form = check_page(client.get("/cases/new")).form("/cases/new")
    opened = client.post(
        "/cases/new",
        data={
            "csrf_token": form_token(client, "/cases/new"),
            "subject": "Lesion in T11",
            "body_region": "spine",
            "clinical_question": "Is this a typical hemangioma?",
            "language": "en",
            "priority": "standard",
            "consent_version": form["inputs"]["consent_version"],
            "accept_consent": "yes",
        },
    )
    assert opened.status_code == 200
    page = check_page(opened)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", opened.text))
    assert "consent" not in page.ids and "Accept the consent" not in text
    assert 'data-next="files"' in opened.text
    assert re.search(r'data-step="files"\s+aria-current="step"', opened.text)


def test_a_delivered_opinion_comes_first_and_the_timeline_speaks_to_the_patient(
    client: TestClient, accounts: Accounts, team: Team
):
    patient = accounts.patient(language="ru")
    case = ready_case(client, patient, language="ru")
    submit(client, patient, case["id"])
    url = f"/api/cases/{case['id']}"
    specialist = team.spine_ru
    assert client.post(f"{url}/accept", headers=specialist.headers).status_code == 200
    opinion = {
        "summary": "Кратко.",
        "findings": "Находки.",
        "impression": "Типичная гемангиома.",
        "answers": [{"question": "Лечить ли?", "answer": "Нет."}],
        "recommendations": {"treatment_options": "", "urgency": "routine", "further_tests": ""},
        "limitations": "",
    }
    assert client.put(f"{url}/opinion", json=opinion, headers=specialist.headers).status_code == 200
    signed = client.post(
        f"{url}/opinion/sign",
        json={"password": specialist.password, "otp": specialist.next_otp()},
        headers=specialist.headers,
    )
    assert signed.status_code == 200, signed.text
    browser_sign_in(client, patient)
    html = client.get(f"/cases/{case['id']}").text
    sections = re.findall(r'<section class="card[^"]*"[^>]* id="([a-z-]+)"', html)
    assert sections.index("next-step") < sections.index("opinion") < sections.index("details")
    assert 'data-next="read_opinion"' in html and '<html lang="ru">' in html
    timeline = re.sub(r"<[^>]+>", " ", html.split('id="timeline"', 1)[1])
    assert "Вы отправили обращение" in timeline and "Ваше второе мнение выдано" in timeline
    # Matching's explanation ("0/8 active cases", the specialties) is for staff.
    assert "active case" not in timeline and "spine surgery" not in timeline


def test_staff_see_the_case_without_the_patient_s_stepper(
    client: TestClient, accounts: Accounts, team: Team
):
    from portal.accounts.models import Role

    patient = accounts.patient()
    case = open_case(client, patient)
    coordinator = accounts.staff(Role.coordinator)
    browser_sign_in(client, coordinator)
    page = check_page(client.get(f"/cases/{case['id']}"))
    assert "progress" not in page.ids and "next-step" not in page.ids
