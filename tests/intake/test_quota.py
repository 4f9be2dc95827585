"""The case quota is summed once per upload request, and still holds file by file within it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from portal.app import create_app
from storage.embedded import EmbeddedS3
from tests.fixtures.app import Accounts, make_settings, open_case
from tests.portal import samples

QUOTA = 100_000
PNG = samples.noise_png(100)  # about 30 KB: three fit in the quota, the fourth does not


def _post(client: TestClient, headers: dict[str, str], case_id: str, count: int) -> Any:
    files = [("files", (f"p{n}.png", PNG, "image/png")) for n in range(count)]
    answer = client.post(f"/api/cases/{case_id}/files", files=files, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_one_request_sums_the_quota_once_and_keeps_it(
    tmp_path: Path, database_url: str, seaweed: EmbeddedS3, sensitive: Any
):
    """Four files in one request: one SUM over the case's files (it was one per file), and the
    room each accepted file takes is counted for the next one of the same request."""
    assert 3 * len(PNG) <= QUOTA < 4 * len(PNG)
    settings = make_settings(tmp_path, database_url, seaweed, case_quota_bytes=QUOTA)
    app: FastAPI = create_app(settings)
    with TestClient(app) as client:
        patient = Accounts(client, app).patient()
        case = open_case(client, patient)
        sums: list[str] = []

        def catch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if "sum(case_files.size)" in statement:
                sums.append(statement)

        sa.event.listen(app.state.engine, "before_cursor_execute", catch)
        try:
            result = _post(client, patient.headers, case["id"], 4)
        finally:
            sa.event.remove(app.state.engine, "before_cursor_execute", catch)
        assert len(sums) == 1
        assert [item["filename"] for item in result["accepted"]] == ["p0.png", "p1.png", "p2.png"]
        assert [item["filename"] for item in result["rejected"]] == ["p3.png"]
        assert "quota" in result["rejected"][0]["reason"]
        again = _post(client, patient.headers, case["id"], 1)  # the next request reads anew
        assert again["accepted"] == [] and "quota" in again["rejected"][0]["reason"]
