"""The case page tells staff which part of the identity differs; the dashboard flags the case
by the same check."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser

from fastapi.testclient import TestClient
from pydicom import dcmread
from pydicom.uid import generate_uid

from portal.accounts.models import Role
from tests.fixtures.app import Accounts, open_case, submit_case
from tests.portal import samples
from tests.portal.test_pages import browser_sign_in, check_page


def study(patient_name: str, birth_date: str, description: str) -> bytes:
    """CT_small.dcm as a study of its own, naming this patient."""
    ds = dcmread(samples.dicom_path("CT_small.dcm"))
    ds.PatientName, ds.PatientBirthDate = patient_name, birth_date
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyDescription = description
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


class IdentityParts(HTMLParser):
    """Each study's identity lines: {study description: [(part, outcome, text)]}."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.studies: dict[str, list[tuple[str, str, str]]] = {}
        self._study: list[tuple[str, str, str]] | None = None
        self._part: tuple[str, str] | None = None
        self._text = ""
        self._title = ""
        self._in_study = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        classes = (values.get("class") or "").split()
        if tag == "li" and "identity-study" in classes:
            self._study, self._title, self._in_study = [], "", True
        elif tag == "li" and "identity-part" in classes:
            self._part, self._text = (str(values["data-part"]), str(values["data-outcome"])), ""
        elif tag == "ul" and self._in_study:
            self._in_study = False
            assert self._study is not None
            self.studies[" ".join(self._title.split())] = self._study

    def handle_endtag(self, tag: str) -> None:
        if tag == "li" and self._part is not None and self._study is not None:
            self._study.append((*self._part, " ".join(self._text.split())))
            self._part = None

    def handle_data(self, data: str) -> None:
        if self._part is not None:
            self._text += data
        elif self._in_study:
            self._title += data


def test_the_case_page_says_which_part_differs(client: TestClient, accounts: Accounts):
    patient = accounts.patient(name="Анна Иванова")
    me = client.patch("/api/me", json={"date_of_birth": "1980-03-12"}, headers=patient.headers)
    assert me.status_code == 200
    case = open_case(client, patient)
    files = [
        ("mri.dcm", study("IVANOVA^ANNA", "19800312", "MRI spine")),
        ("ct.dcm", study("IVANOVA^MARIA", "19811203", "CT chest")),
    ]
    uploaded = client.post(
        f"/api/cases/{case['id']}/files",
        files=[("files", (name, data, "application/dicom")) for name, data in files],
        headers=patient.headers,
    )
    assert uploaded.status_code in {200, 201}, uploaded.text
    submit_case(client, patient, case["id"])

    coordinator = accounts.staff(Role.coordinator)
    browser_sign_in(client, coordinator)
    page = client.get(f"/cases/{case['id']}")
    check_page(page)
    assert 'id="identity-check"' in page.text
    studies = IdentityParts(page.text).studies
    mri = next(lines for title, lines in studies.items() if title.startswith("MRI spine"))
    ct = next(lines for title, lines in studies.items() if title.startswith("CT chest"))
    assert [outcome for _, outcome, _ in mri] == ["match", "match", "match"]
    assert ct == [
        ("family_name", "match", "Family name matches (Иванова = IVANOVA)."),
        ("given_name", "differs", "Given name differs: account “Анна”, scans “MARIA”."),
        ("birth_date", "differs", "Date of birth differs: account 12 Mar 1980, scans 3 Dec 1981."),
    ]

    dashboard = client.get("/cases")
    row = re.search(rf'href="/cases/{case["id"]}".*?</td>', dashboard.text, re.S)
    assert row and "identity?" in row.group(0)

    # The patient sees none of it.
    client.cookies.clear()
    browser_sign_in(client, patient)
    own = client.get(f"/cases/{case['id']}")
    assert own.status_code == 200 and 'id="identity-check"' not in own.text


def test_a_matching_case_is_not_flagged(client: TestClient, accounts: Accounts):
    patient = accounts.patient(name="Юлия Щербакова")
    client.patch("/api/me", json={"date_of_birth": "1975-01-30"}, headers=patient.headers)
    case = open_case(client, patient)
    data = study("SCHERBAKOVA^YULIYA", "19750130", "MRI spine")
    uploaded = client.post(
        f"/api/cases/{case['id']}/files",
        files=[("files", ("mri.dcm", data, "application/dicom"))],
        headers=patient.headers,
    )
    assert uploaded.status_code in {200, 201}, uploaded.text
    submit_case(client, patient, case["id"])
    coordinator = accounts.staff(Role.coordinator)
    identity = client.get(f"/api/cases/{case['id']}/studies", headers=coordinator.headers).json()[
        "identity"
    ]
    assert identity["mismatch"] is False
    assert [p["outcome"] for p in identity["studies"][0]["parts"]] == ["match"] * 3
    browser_sign_in(client, coordinator)
    dashboard = client.get("/cases")
    row = re.search(rf'href="/cases/{case["id"]}".*?</td>', dashboard.text, re.S)
    assert row and "identity?" not in row.group(0)
