"""The viewer's routes: OHIF's page for every route of a case's viewer, the configuration with
the case's DICOMweb root, the release's files with long caching, the viewer's CSP on ``/ohif/``
only, sign-in like every page, and a readable page when the viewer is not installed."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from fastapi.testclient import TestClient
from pydicom import dcmread

from portal.middleware import API_CSP, PAGE_CSP
from portal.ohif.install import Release, install
from portal.ohif.shell import OHIF_PAGE_CSP, OHIF_WORKER_CSP
from portal.settings import Settings
from storage.embedded import EmbeddedS3
from tests.fixtures.app import Account, Accounts, make_settings, open_case, submit_case
from tests.ohif.conftest import ENTRY, VERSION
from tests.portal import samples
from tests.portal.test_pages import Page

BASE = f"/ohif/dist/{VERSION}/"


@pytest.fixture
def ohif_root(tmp_path: Path, release: Release) -> Path:
    root = tmp_path / "ohif"
    install(root=root, release=release, say=lambda line: None)
    return root


@pytest.fixture
def settings(
    tmp_path: Path, database_url: str, seaweed: EmbeddedS3, ohif_root: Path, release: Release
) -> Settings:
    return make_settings(
        tmp_path,
        database_url,
        seaweed,
        ohif_dir=ohif_root,
        ohif_version=VERSION,
        ohif_integrity=release.integrity,
    )


def signed_in(client: TestClient, account: Account) -> TestClient:
    """The client as a browser with ``account``'s session cookie (and no bearer token)."""
    assert account.token
    client.cookies.set(client.app.state.settings.cookie_name, account.token)  # type: ignore[attr-defined]
    return client


def config_of(script: str) -> dict[str, Any]:
    match = re.search(r"^window\.config = (\{.*\});$", script, re.MULTILINE | re.DOTALL)
    assert match, script
    config: dict[str, Any] = json.loads(match.group(1))
    return config


@pytest.mark.parametrize(
    "route",
    [
        "",
        "/",
        "/viewer",
        "/viewer?StudyInstanceUIDs=1.2.3",
        "/viewer/dicomweb?StudyInstanceUIDs=1.2.3",
        "/notfoundstudy",
        "/any/route/at/all",
    ],
)
def test_every_route_of_a_case_viewer_is_the_ohif_page(
    client: TestClient, accounts: Accounts, route: str
):
    case_id = str(uuid.uuid4())  # the page holds no case data: the DICOMweb service decides
    signed_in(client, accounts.specialist())

    response = client.get(f"/ohif/cases/{case_id}{route}")

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == OHIF_PAGE_CSP
    assert response.headers["cache-control"] == "no-store"
    page = Page(response.text)
    assert [script.get("src") for script in page.scripts] == [
        f"/ohif/cases/{case_id}/app-config.js",
        BASE + ENTRY,
    ], "no inline script, the configuration before the bundle"
    assert f'href="{BASE}app.bundle.css"' in response.text
    assert "root" in page.ids


def test_the_configuration_has_one_data_source_the_case_dicomweb_root(
    client: TestClient, accounts: Accounts
):
    patient = accounts.patient()
    case_id = open_case(client, patient)["id"]
    signed_in(client, patient)

    response = client.get(f"/ohif/cases/{case_id}/app-config.js")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["content-security-policy"] == OHIF_PAGE_CSP
    assert response.headers["cache-control"] == "no-store"
    assert f'window.PUBLIC_URL = "{BASE}";' in response.text
    assert not re.search(r"https?:|//[a-z]", response.text), "no other server is named"
    config = config_of(response.text)
    assert config["routerBasename"] == f"/ohif/cases/{case_id}"
    assert config["showStudyList"] is False
    assert config["investigationalUseDialog"] == {"option": "never"}
    assert "dangerouslyUseDynamicConfig" not in config and "oidc" not in config
    assert "customizationUrlPrefixes" not in config
    (source,) = config["dataSources"]
    assert source["namespace"] == "@ohif/extension-default.dataSourcesModule.dicomweb"
    assert config["defaultDataSourceName"] == source["sourceName"]
    options = source["configuration"]
    root = f"/api/cases/{case_id}/dicomweb"
    assert options["qidoRoot"] == options["wadoRoot"] == options["wadoUriRoot"] == root
    assert options["supportsReject"] is False and options["dicomUploadEnabled"] is False


@pytest.mark.parametrize(
    "case_id",
    [
        "not-a-case",
        "12345",
        str(uuid.uuid4()).upper(),
        "{" + str(uuid.uuid4()) + "}",
        uuid.uuid4().hex,
        "urn:uuid:" + str(uuid.uuid4()),
    ],
)
def test_a_case_id_that_is_not_a_canonical_uuid_is_not_found(
    client: TestClient, accounts: Accounts, case_id: str
):
    signed_in(client, accounts.specialist())
    for path in (
        f"/ohif/cases/{quote(case_id)}/viewer",
        f"/ohif/cases/{quote(case_id)}/app-config.js",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")  # the portal's page


def test_signing_in_leads_back_to_the_same_view_and_study(client: TestClient):
    case_id = uuid.uuid4()
    for path in (
        f"/ohif/cases/{case_id}/viewer?StudyInstanceUIDs=1.2.840.1",
        f"/ohif/cases/{case_id}/app-config.js",
    ):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303
        location = urlsplit(response.headers["location"])
        assert location.path == "/login"
        assert parse_qs(location.query)["next"] == [path]


def test_the_release_files_are_served_with_long_caching_and_the_worker_policy(
    client: TestClient,
):
    script = client.get(BASE + ENTRY)  # no sign-in: the public npm release
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert script.headers["content-security-policy"] == OHIF_WORKER_CSP
    assert f'__webpack_require__.p = "{BASE}"'.encode() in script.content
    for name, media_type in [
        ("c0dec.wasm", "application/wasm"),
        ("app.bundle.css", "text/css; charset=utf-8"),
        ("f00d.woff2", "font/woff2"),
        ("assets/favicon.ico", "image/vnd.microsoft.icon"),
    ]:
        response = client.get(BASE + name)
        assert response.status_code == 200, name
        assert response.headers["content-type"] == media_type
        assert response.headers["content-security-policy"] == OHIF_PAGE_CSP
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"


@pytest.mark.parametrize(
    "path",
    [
        BASE + "portal-ohif.json",
        BASE + "sw.js",
        BASE + "app-config.js",
        BASE + "index.html",
        BASE + "..%2F.install.lock",
        BASE + "%2E%2E/%2E%2E/portal.db",
        BASE + ".hidden",
        BASE,
        BASE + "assets",
        f"/ohif/dist/0.0.1/{ENTRY}",
        "/ohif/",
        "/ohif/cases",
    ],
)
def test_nothing_but_the_release_files_is_served(client: TestClient, path: str):
    response = client.get(path)
    assert response.status_code == 404, path
    assert "immutable" not in response.headers["cache-control"]


def test_ohif_policies_stay_under_ohif_and_the_other_pages_keep_theirs(
    client: TestClient, accounts: Accounts
):
    patient = accounts.patient()
    assert client.get("/login").headers["content-security-policy"] == PAGE_CSP
    assert (
        client.get("/api/me", headers=patient.headers).headers["content-security-policy"] == API_CSP
    )
    signed_in(client, patient)
    assert client.get("/cases").headers["content-security-policy"] == PAGE_CSP
    for policy in (OHIF_PAGE_CSP, OHIF_WORKER_CSP):
        directives = dict(item.split(" ", 1) for item in policy.split("; "))
        assert directives["connect-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
        assert "http" not in policy and "*" not in policy, "only the portal's origin"
    assert "'unsafe-eval'" not in OHIF_PAGE_CSP and "'unsafe-eval'" in OHIF_WORKER_CSP


def test_case_page_links_a_study_to_ohif_only_while_it_is_installed(
    client: TestClient, accounts: Accounts, settings: Settings, ohif_root: Path
):
    patient = accounts.patient()
    case_id = open_case(client, patient)["id"]
    uploaded = client.post(
        f"/api/cases/{case_id}/files",
        files=[("files", ("ct.dcm", samples.dicom("CT_small.dcm"), "application/dicom"))],
        headers=patient.headers,
    )
    assert uploaded.status_code == 200, uploaded.text
    study_uid = str(dcmread(samples.dicom_path("CT_small.dcm")).StudyInstanceUID)
    signed_in(client, patient)

    link = f"/ohif/cases/{case_id}/viewer?StudyInstanceUIDs={study_uid}"
    assert link in Page(client.get(f"/cases/{case_id}").text).links

    (ohif_root / VERSION / "portal-ohif.json").unlink()  # as if it had never been installed
    assert link not in Page(client.get(f"/cases/{case_id}").text).links
    missing = client.get(link)
    assert missing.status_code == 503 and "not installed" in missing.text
    assert client.get(f"/ohif/cases/{case_id}/app-config.js").status_code == 404
    assert client.get(BASE + ENTRY).status_code == 404


def test_the_specialist_worklist_opens_each_case_study_in_ohif(
    client: TestClient, accounts: Accounts, app: Any
):
    from sqlmodel import Session

    from portal.cases.models import Case

    patient, specialist = accounts.patient(), accounts.specialist()
    case_id = open_case(client, patient)["id"]
    uploaded = client.post(
        f"/api/cases/{case_id}/files",
        files=[("files", ("ct.dcm", samples.dicom("CT_small.dcm"), "application/dicom"))],
        headers=patient.headers,
    )
    assert uploaded.status_code == 200, uploaded.text
    submit_case(client, patient, case_id)  # a draft's images are its patient's alone
    other_case = open_case(client, accounts.patient())["id"]
    with Session(app.state.engine) as db:
        for assigned in (case_id, other_case):
            case = db.get(Case, uuid.UUID(assigned))
            assert case is not None
            case.assigned_specialist_id = specialist.user_id
            db.add(case)
        db.commit()
    study_uid = str(dcmread(samples.dicom_path("CT_small.dcm")).StudyInstanceUID)

    worklist = Page(signed_in(client, specialist).get("/cases").text)
    ohif_links = [link for link in worklist.links if link.startswith("/ohif/")]
    assert ohif_links == [f"/ohif/cases/{case_id}/viewer?StudyInstanceUIDs={study_uid}"]
