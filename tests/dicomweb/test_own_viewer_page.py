"""The case page's "Open in your own viewer": the address, a token shown once, revoking it."""

from __future__ import annotations

import re

import httpx
from fastapi.testclient import TestClient

from tests.fixtures.app import Accounts, open_case
from tests.fixtures.live import LiveServer
from tests.portal import samples
from tests.portal.test_pages import browser_sign_in, check_page


def test_the_owner_makes_a_token_on_the_case_page_reads_with_it_and_revokes_it(
    client: TestClient, accounts: Accounts, live: LiveServer
):
    patient = accounts.patient()
    case_id = open_case(client, patient)["id"]
    uploaded = client.post(
        f"/api/cases/{case_id}/files",
        files=[("files", ("ct.dcm", samples.dicom("CT_small.dcm"), "application/dicom"))],
        headers=patient.headers,
    )
    assert uploaded.status_code == 200, uploaded.text
    browser_sign_in(client, patient)

    page = check_page(client.get(f"/cases/{case_id}"))
    assert "own-viewer" in page.ids and "dicomweb-token" not in page.ids
    form = page.form(f"/cases/{case_id}/viewer-tokens")
    made = client.post(
        f"/cases/{case_id}/viewer-tokens",
        data={"csrf_token": form["inputs"]["csrf_token"], "label": "Horos at home"},
    )
    shown = check_page(made)
    assert "dicomweb-token" in shown.ids
    token = re.search(r'id="dicomweb-token" readonly value="(dcmweb_[^"]+)"', made.text)
    assert token is not None
    assert f"/api/cases/{case_id}/dicomweb" in made.text and "Horos at home" in made.text

    root = f"{live.url}/api/cases/{case_id}/dicomweb"
    bearer = {"Authorization": f"Bearer {token.group(1)}"}
    assert httpx.get(f"{root}/studies", headers=bearer).status_code == 200

    again = check_page(client.get(f"/cases/{case_id}"))
    assert "dicomweb-token" not in again.ids, "the token is shown once only"
    revoke = next(f for f in again.forms if f["action"].endswith("/revoke"))
    gone = client.post(
        revoke["action"],
        data={"csrf_token": revoke["inputs"]["csrf_token"]},
        follow_redirects=False,
    )
    assert gone.status_code == 303
    assert httpx.get(f"{root}/studies", headers=bearer).status_code == 401
    assert "revoked" in client.get(f"/cases/{case_id}").text


def test_no_own_viewer_box_for_those_who_may_not_make_tokens(
    client: TestClient, accounts: Accounts
):
    from portal.accounts.models import Role

    patient, admin = accounts.patient(), accounts.staff(Role.admin)
    case_id = open_case(client, patient)["id"]
    client.post(
        f"/api/cases/{case_id}/files",
        files=[("files", ("ct.dcm", samples.dicom("CT_small.dcm"), "application/dicom"))],
        headers=patient.headers,
    )
    browser_sign_in(client, admin)
    page = check_page(client.get(f"/cases/{case_id}"))
    assert "own-viewer" not in page.ids
    refused = client.post(
        f"/cases/{case_id}/viewer-tokens",
        data={"csrf_token": page.forms[0]["inputs"].get("csrf_token", "")},
    )
    assert refused.status_code == 403
