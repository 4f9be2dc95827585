"""Two ``portal serve`` replicas on one PostgreSQL and a SeaweedFS cluster of separate
processes: a client may reach either replica for any request, as behind a load balancer."""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest
from fastapi import FastAPI

from portal.settings import Settings
from tests.cluster import SeaweedCluster
from tests.crash.harness import Crashes
from tests.fixtures.app import PASSWORD
from tests.fixtures.http_api import consent_to_case, create_case, register_patient
from tests.fixtures.live import ServerProcess
from tests.portal import samples

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]


def _tus_metadata(case_id: str, filename: str) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in (("case_id", case_id), ("filename", filename))
    )


def test_a_patient_moving_between_replicas_sees_one_portal(
    replicas: list[ServerProcess], cluster: SeaweedCluster, settings: Settings, app: FastAPI
):
    a, b = (server.url for server in replicas)
    assert cluster.data_nodes() == 2
    patient = register_patient(a, PASSWORD)
    case_id = create_case(b, patient.headers)
    consent_to_case(a, patient.headers, case_id)

    ct = samples.dicom("CT_small.dcm")
    sent = httpx.post(
        f"{b}/api/cases/{case_id}/files",
        files=[("files", ("ct.dcm", ct))],
        headers=patient.headers,
        timeout=60,
    )
    assert sent.status_code == 200 and len(sent.json()["accepted"]) == 1, sent.text

    # A resumable upload begun on A and finished on B (as after a deploy or a failover).
    mr = samples.dicom("MR_small.dcm")
    tus = {**patient.headers, "Tus-Resumable": "1.0.0"}
    created = httpx.post(
        f"{a}/api/uploads",
        headers={
            **tus,
            "Upload-Length": str(len(mr)),
            "Upload-Metadata": _tus_metadata(case_id, "mr.dcm"),
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    half = len(mr) // 2
    patch = {**tus, "Content-Type": "application/offset+octet-stream"}
    first = httpx.patch(
        f"{a}{location}", content=mr[:half], headers={**patch, "Upload-Offset": "0"}, timeout=60
    )
    assert first.status_code == 204, first.text
    offset = httpx.head(f"{b}{location}", headers=tus, timeout=30).headers["upload-offset"]
    assert int(offset) == half
    rest = httpx.patch(
        f"{b}{location}", content=mr[half:], headers={**patch, "Upload-Offset": offset}, timeout=60
    )
    assert rest.status_code == 204, rest.text

    listed = httpx.get(f"{a}/api/cases/{case_id}/files", headers=patient.headers, timeout=30)
    files = {item["filename"]: item for item in _items(listed.json())}
    assert set(files) == {"ct.dcm", "mr.dcm"}, listed.text
    for name, original in (("ct.dcm", ct), ("mr.dcm", mr)):
        for url in (a, b):
            content = httpx.get(
                f"{url}/api/cases/{case_id}/files/{files[name]['id']}/content",
                headers=patient.headers,
                timeout=60,
            )
            assert content.status_code == 200
            assert (
                hashlib.sha256(content.content).hexdigest() == hashlib.sha256(original).hexdigest()
            )

    crashes = Crashes(settings, app, replicas[0].log)
    crashes.assert_storage_consistent()  # scrub clean, audit chain verifies


def _items(body: object) -> list[dict[str, object]]:
    """A list answer, paginated (``{"items": …}``) or not."""
    if isinstance(body, dict):
        items = body["items"]
        assert isinstance(items, list)
        return items
    assert isinstance(body, list)
    return body
