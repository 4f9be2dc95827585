"""Frames per series are summed by the database, in one statement for the whole study list."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fixtures.app import Accounts, open_case
from tests.fixtures.bulk import insert_images


def test_frame_totals_are_one_sum_per_request(app: FastAPI, client: TestClient, accounts: Accounts):
    patient = accounts.patient()
    case = open_case(client, patient)
    with app.state.engine.begin() as connection:
        insert_images(
            connection,
            case_id=uuid.UUID(case["id"]),
            uploader_id=patient.user_id,
            instances=250,
            per_series=100,
            frames=3,
        )
    sent: list[str] = []

    def catch(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "dicom_instances" in statement:
            sent.append(statement)

    sa.event.listen(app.state.engine, "before_cursor_execute", catch)
    try:
        answer = client.get(f"/api/cases/{case['id']}/studies", headers=patient.headers)
    finally:
        sa.event.remove(app.state.engine, "before_cursor_execute", catch)
    assert answer.status_code == 200, answer.text
    series = answer.json()["studies"][0]["series"]
    assert [(item["instances"], item["frames"]) for item in series] == [
        (100, 300),
        (100, 300),
        (50, 150),
    ]
    frame_reads = [statement for statement in sent if "number_of_frames" in statement]
    assert len(frame_reads) == 1 and "sum(dicom_instances.number_of_frames)" in frame_reads[0]
