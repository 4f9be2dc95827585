"""The fuzzers' findings sent as uploads: refused with a reason, never a 500."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from portal.intake.sniff import DICOM_MAGIC, DICOM_PREAMBLE
from tests.fixtures.app import Accounts, open_case

CORPUS = Path(__file__).parent / "corpus"
FINDINGS = sorted([*CORPUS.glob("dicom/found-*"), *CORPUS.glob("zip/found-*")])

pytestmark = pytest.mark.seaweedfs


def as_uploaded(path: Path) -> bytes:
    data = path.read_bytes()
    if path.parent.name == "dicom" and data[DICOM_PREAMBLE : DICOM_PREAMBLE + 4] != DICOM_MAGIC:
        data = bytes(DICOM_PREAMBLE) + DICOM_MAGIC + data  # as the fuzz target sent it
    return data


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_fuzz_findings_are_refused_with_a_reason(client: TestClient, accounts: Accounts):
    patient = accounts.patient()
    case = open_case(client, patient)
    for path in FINDINGS:
        response = client.post(
            f"/api/cases/{case['id']}/files",
            files=[("files", (path.name, as_uploaded(path)))],
            headers=patient.headers,
        )
        assert response.status_code == 200, (path.name, response.status_code, response.text)
        rejected = response.json()["rejected"]
        # An archive of nothing but folders imports nothing and refuses nothing.
        assert all(item["reason"] for item in rejected), (path.name, response.json())
    # Undamaged entries of a damaged archive may be accepted; each of them reads back whole.
    listed = client.get(f"/api/cases/{case['id']}/files", headers=patient.headers).json()["items"]
    for item in listed:
        content = client.get(
            f"/api/cases/{case['id']}/files/{item['id']}/content", headers=patient.headers
        )
        assert content.status_code == 200 and len(content.content) == item["size"]
