"""Server-rendered pages, parsed: forms carry CSRF tokens, no inline scripts, headers, errors."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from fastapi.testclient import TestClient

from portal.accounts.models import Role
from tests.fixtures.app import PASSWORD, Account, Accounts, open_case
from tests.fixtures.logs import SENSITIVE
from tests.portal import samples


class Page(HTMLParser):
    """The parts of a page the tests look at."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.scripts: list[dict[str, str | None]] = []
        self.handlers: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.feed(html)

    def form(self, action: str) -> dict[str, Any]:
        return next(form for form in self.forms if form["action"] == action)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if tag == "form":
            self.forms.append(
                {"method": values.get("method"), "action": values.get("action"), "inputs": {}}
            )
        elif tag in {"input", "textarea", "select"} and self.forms and values.get("name"):
            self.forms[-1]["inputs"][values["name"]] = values.get("value") or ""
        elif tag == "script":
            self.scripts.append(values)
        elif tag == "a" and values.get("href"):
            self.links.append(str(values["href"]))


def check_page(response: Any) -> Page:
    """Every page: HTML, the pages' CSP, no-store, no inline script, CSRF on every post form."""
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    page = Page(response.text)
    # Data blocks (type="application/json") are never run: only code must come from a file.
    code = [script for script in page.scripts if script.get("type") != "application/json"]
    assert all(script.get("src") for script in code), "inline script"
    assert not page.handlers, f"inline event handlers: {page.handlers}"
    for form in page.forms:
        if (form["method"] or "get").lower() == "post":
            assert form["inputs"].get("csrf_token"), f"form {form['action']} has no CSRF token"
    return page


def form_token(client: TestClient, path: str) -> str:
    """The pre-session token of the sign-in or registration form (its cookie stays in client)."""
    return str(check_page(client.get(path)).form(path)["inputs"]["csrf_token"])


def browser_sign_in(client: TestClient, account: Account) -> None:
    body = {"email": account.email, "password": account.password}
    if account.totp_secret:
        body["otp"] = account.next_otp()
    body["csrf_token"] = form_token(client, "/login")
    response = client.post("/login", data=body, follow_redirects=False)
    assert response.status_code == 303, response.text


def test_anonymous_visitors_are_sent_to_sign_in_and_back(client: TestClient):
    response = client.get("/cases", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/cases"
    login = client.get("/login?next=/cases")
    page = check_page(login)
    assert page.form("/login")["inputs"]["next"] == "/cases"
    for evil in ("//evil.example", "https://evil.example/", "/\\evil.example"):
        page = check_page(client.get("/login", params={"next": evil}))
        assert page.form("/login")["inputs"]["next"] == "/"


def test_patient_registers_opens_a_case_and_submits_it(client: TestClient, accounts: Accounts):
    name, email = "Олег Петров", "oleg.petrov@example.org"
    SENSITIVE.add(name, email)
    token = form_token(client, "/register")
    fields = {"full_name": name, "email": email, "language": "ru", "csrf_token": token}
    weak = client.post("/register", data={**fields, "password": "short"})
    assert weak.status_code == 422 and "12 characters" in weak.text
    registered = client.post(
        "/register", data={**fields, "password": PASSWORD}, follow_redirects=False
    )
    assert registered.status_code == 303 and registered.headers["location"] == "/login?registered=1"
    assert "registered" in check_page(client.get(registered.headers["location"])).ids
    signed_in = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": form_token(client, "/login")},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/"
    empty = check_page(client.get("/cases"))
    # The account speaks Russian, so its pages do.
    assert "У вас пока нет обращений" in client.get("/cases").text and "/cases/new" in empty.links

    form = check_page(client.get("/cases/new")).form("/cases/new")
    token = form["inputs"]["csrf_token"]
    case_form = {
        "subject": "Гемангиома Th11",
        "body_region": "spine",
        "clinical_question": "Нужно ли лечение этой гемангиомы?",
        "language": "ru",
        "priority": "standard",
        "consent_version": form["inputs"]["consent_version"],
        "accept_consent": "yes",
    }
    forged = client.post("/cases/new", data=case_form, follow_redirects=False)
    assert forged.status_code == 403 and "Срок действия формы истёк" in forged.text
    check_page(forged)
    opened = client.post(
        "/cases/new", data={**case_form, "csrf_token": token}, follow_redirects=False
    )
    assert opened.status_code == 303
    case_url = opened.headers["location"].split("?")[0]
    case_id = case_url.rsplit("/", 1)[1]
    assert re.fullmatch(r"/cases/[0-9a-f-]{36}", case_url)  # no patient data in the address

    page = check_page(client.get(opened.headers["location"]))
    assert "uploader" in page.ids and "consent" not in page.ids  # consent given with the form
    refused = client.post(f"{case_url}/submit", data={"csrf_token": token})
    assert refused.status_code == 409 and "хотя бы одно изображение" in refused.text
    uploaded = client.post(
        f"/api/cases/{case_id}/files",
        files=[("files", ("ct.dcm", samples.dicom(), "application/dicom"))],
        headers={"X-CSRF-Token": token},
    )
    assert uploaded.status_code == 200 and uploaded.json()["accepted"]
    submitted = client.post(f"{case_url}/submit", data={"csrf_token": token})
    assert submitted.status_code == 200
    check_page(submitted)
    assert "Ваше обращение отправлено" in submitted.text
    assert "координатор выбирает вашего специалиста" in submitted.text  # nobody to match yet
    listing = client.get("/cases")
    assert "Гемангиома Th11" in listing.text


def test_specialist_and_coordinator_pages(client: TestClient, accounts: Accounts):
    coordinator = accounts.staff(Role.coordinator)
    specialist = accounts.specialist(body_regions=["spine"], modalities=["CT"], languages=["en"])
    patient = accounts.patient()
    from tests.reviewers.conftest import ready_case, submit

    case = ready_case(client, patient)
    submit(client, patient, case["id"])
    heart = ready_case(client, patient, body_region="heart")  # nobody reads hearts here
    assert submit(client, patient, heart["id"])["status"] == "triage"
    client.cookies.clear()

    browser_sign_in(client, specialist)
    worklist = check_page(client.get("/cases"))
    assert f"/cases/{case['id']}" in worklist.links
    offer = check_page(client.get(f"/cases/{case['id']}"))
    assert "accept-case" in offer.ids
    token = offer.form(f"/cases/{case['id']}/accept")["inputs"]["csrf_token"]
    accepted = client.post(f"/cases/{case['id']}/accept", data={"csrf_token": token})
    assert accepted.status_code == 200 and "You have accepted the case" in accepted.text
    viewer = check_page(client.get(f"/cases/{case['id']}/viewer"))
    assert "viewer" in viewer.ids and "viewer-slider" in viewer.ids
    series_link = next(link for link in viewer.links if "viewer?series=" in link)
    series_id = series_link.rsplit("=", 1)[1]
    series = client.get(f"/api/cases/{case['id']}/series/{series_id}").json()
    frame = client.get(f"/api/cases/{case['id']}/instances/{series['instances'][0]['id']}/frames/1")
    assert frame.status_code == 200 and frame.content.startswith(b"\x89PNG")
    unknown = check_page(client.get(f"/cases/{case['id']}/viewer?series={case['id']}"))
    assert "viewer" not in unknown.ids
    editor = check_page(client.get(f"/cases/{case['id']}/opinion/edit"))
    assert "opinion-form" in editor.ids and "sign-opinion" in editor.ids
    saved = client.post(
        f"/cases/{case['id']}/opinion",
        data={"csrf_token": token, "summary": "Typical hemangioma.", "urgency": "routine"},
    )
    assert saved.status_code == 200 and "The draft is saved" in saved.text
    client.cookies.clear()

    browser_sign_in(client, coordinator)
    dashboard_page = client.get("/cases")
    dashboard = check_page(dashboard_page)
    assert "triage" in dashboard.ids and "workload" in dashboard.ids
    assert heart["reference"] in dashboard_page.text
    assert "No specialist covers this case yet" in dashboard_page.text
    # The CT sample names another patient than the account: flagged for the coordinator.
    assert "identity?" in dashboard_page.text
    assert f"/cases/{case['id']}" in dashboard.links
    filtered = client.get("/cases", params={"status": "triage"})
    assert f"/cases/{case['id']}" not in Page(filtered.text).links
    case_page = client.get(f"/cases/{case['id']}")
    assert "assignment" in check_page(case_page).ids and "audit-trail" in check_page(case_page).ids
    assert "case.status" in case_page.text and "opinion.save" in case_page.text


def test_unknown_pages_and_other_peoples_cases_get_readable_errors(
    client: TestClient, accounts: Accounts
):
    owner = accounts.patient()
    from tests.fixtures.app import open_case

    case = open_case(client, owner)
    stranger = accounts.patient()
    client.cookies.clear()
    browser_sign_in(client, stranger)
    hidden = client.get(f"/cases/{case['id']}")
    assert hidden.status_code == 404 and "Case not found." in hidden.text
    check_page(hidden)
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and "There is no page at this address" in missing.text
    bad_id = client.get("/cases/not-a-uuid")
    assert bad_id.status_code == 422
    check_page(bad_id)


def test_patient_turns_on_two_step_sign_in_from_the_pages(client: TestClient, accounts: Accounts):
    import pyotp

    patient = accounts.patient()
    browser_sign_in(client, patient)
    page = check_page(client.get("/account/two-step"))
    token = page.form("/account/two-step/start")["inputs"]["csrf_token"]
    no_password = client.post("/account/two-step/start", data={"csrf_token": token})
    assert no_password.status_code == 403 and "password is not correct" in no_password.text
    check_page(no_password)
    started = client.post(
        "/account/two-step/start", data={"csrf_token": token, "password": patient.password}
    )
    check_page(started)
    assert "<svg" in started.text
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', started.text)
    assert secret is not None
    confirm = {"csrf_token": token, "password": patient.password}
    wrong = client.post("/account/two-step/confirm", data={**confirm, "code": "000000"})
    assert wrong.status_code == 422 and "not correct" in wrong.text
    code = pyotp.TOTP(secret.group(1)).now()
    confirmed = client.post("/account/two-step/confirm", data={**confirm, "code": code})
    assert confirmed.status_code == 200 and "two-step-on" in Page(confirmed.text).ids
    client.cookies.clear()
    body = {"email": patient.email, "password": patient.password}
    asked = client.post("/login", data={**body, "csrf_token": form_token(client, "/login")})
    # The password was right: the next page asks for the code alone (no session yet).
    assert asked.status_code == 200 and asked.url.path == "/login/code"
    assert set(check_page(asked).form("/login/code")["inputs"]) == {"csrf_token", "next", "otp"}
    assert client.get("/api/me").status_code == 401


def test_staff_without_two_step_are_sent_to_set_it_up(client: TestClient, accounts: Accounts):
    coordinator = accounts.staff(Role.coordinator, enrolled=False)
    signed_in = client.post(
        "/login",
        data={
            "email": coordinator.email,
            "password": coordinator.password,
            "csrf_token": form_token(client, "/login"),
        },
        follow_redirects=False,
    )
    assert signed_in.status_code == 303
    cases = client.get("/cases", follow_redirects=False)
    assert cases.status_code == 303 and cases.headers["location"] == "/account/two-step"
    page = check_page(client.get("/account/two-step"))
    assert (
        "start-two-step" in page.ids
        and "Staff accounts must use it" in client.get("/account/two-step").text
    )


def test_the_case_page_shows_images_by_series_and_records_by_name(
    client: TestClient, accounts: Accounts
):
    """A CD's hundreds of files are not a table on the case page: DICOM files are counted,
    with each series' images and size under Images; records are listed by name; every file
    by name is one link away, a page at a time."""
    patient = accounts.patient()
    case_id = open_case(client, patient)["id"]
    series = samples.ct_series(3)
    sent = [("files", (f"IM000{n}", data, "application/dicom")) for n, data in enumerate(series)]
    sent.append(("files", ("discharge-letter.pdf", samples.pdf(), "application/pdf")))
    uploaded = client.post(f"/api/cases/{case_id}/files", files=sent, headers=patient.headers)
    assert uploaded.status_code == 200 and len(uploaded.json()["accepted"]) == 4

    browser_sign_in(client, patient)
    response = client.get(f"/cases/{case_id}")
    page = check_page(response)
    files_card = response.text.split('id="files"', 1)[1].split("</section>", 1)[0]
    assert 'data-dicom-files="3"' in response.text and 'data-records="1"' in response.text
    assert "discharge-letter.pdf" in files_card and "IM000" not in response.text
    size = sum(len(data) for data in series)
    assert f"3 images · {size / 1024:.1f} KiB" in response.text
    assert f"/cases/{case_id}/files" in page.links

    first = check_page(client.get(f"/cases/{case_id}/files", params={"limit": 3}))
    more = [link for link in first.links if "cursor=" in link]
    assert len(more) == 1
    second = client.get(more[0])
    check_page(second)
    names = {"IM0000", "IM0001", "IM0002", "discharge-letter.pdf"}
    shown = {name for name in names if name in client.get(f"/cases/{case_id}/files").text}
    assert shown == names
    assert sum(second.text.count(name) for name in names) == 1  # the fourth, oldest first
    assert client.get(f"/cases/{case_id}/files", params={"cursor": "nonsense"}).status_code == 400
