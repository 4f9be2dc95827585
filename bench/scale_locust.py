"""Locust users for ``bench/scale.py`` (run by it: ``locust -f bench/scale_locust.py``).

Coordinators browse (dashboard, case lists, case pages, studies, audit trail, QIDO-RS) while
patients upload, each user waiting 1 to 3 s between requests. Every request goes to one of the
replicas in the plan, chosen at random, as a load balancer without affinity would send it.
The plan (``SCALE_PLAN``, JSON) holds the hosts, sign-in tokens and case ids.
"""

from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path
from typing import Any

from locust import HttpUser, between, task
from pydicom import dcmread
from pydicom.uid import generate_uid

from tests.portal import samples

PLAN: dict[str, Any] = json.loads(Path(os.environ["SCALE_PLAN"]).read_text())
HOSTS: list[str] = PLAN["hosts"]
STATUSES = ["submitted", "triage", "assigned", "in_review", "opinion_delivered"]


class _PortalUser(HttpUser):
    abstract = True
    host = HOSTS[0]
    wait_time = between(1, 3)

    def url(self, path: str) -> str:
        return random.choice(HOSTS) + path

    def sign_in(self, token: str) -> None:
        """The bearer token for the API, the same token as session cookie for the pages."""
        self.client.headers["Authorization"] = f"Bearer {token}"
        self.client.headers["Cookie"] = f"{PLAN['cookie_name']}={token}"

    def get(self, path: str, name: str) -> None:
        """Anything but a 200 (a redirect to sign-in, say) counts as an error."""
        with self.client.get(
            self.url(path), name=name, allow_redirects=False, catch_response=True
        ) as answer:
            if answer.status_code != 200:
                answer.failure(f"answered {answer.status_code}")


class Coordinator(_PortalUser):
    weight = 9

    def on_start(self) -> None:
        self.sign_in(random.choice(PLAN["coordinators"]))

    def case(self) -> str:
        return str(random.choice(PLAN["cases"]))

    @task(3)
    def dashboard(self) -> None:
        self.get("/cases", "page: coordinator dashboard")

    @task(3)
    def case_list(self) -> None:
        self.get("/api/cases?limit=50", "api: case list, first page")

    @task(2)
    def case_list_by_status(self) -> None:
        self.get(
            f"/api/cases?limit=50&status={random.choice(STATUSES)}", "api: case list by status"
        )

    @task(3)
    def case_page(self) -> None:
        self.get(f"/cases/{self.case()}", "page: case")

    @task(2)
    def studies(self) -> None:
        self.get(f"/api/cases/{self.case()}/studies", "api: case studies")

    @task(1)
    def audit(self) -> None:
        self.get(f"/api/audit?case_id={self.case()}", "api: audit trail of a case")

    @task(2)
    def qido(self) -> None:
        self.get(f"/api/cases/{self.case()}/dicomweb/studies", "qido: studies of a case")


INSTANCE = samples.ct_series(1)[0]


class Patient(_PortalUser):
    """Sends the instances of one CT series, one file per request, as a folder upload does."""

    weight = 1

    def on_start(self) -> None:
        mine = random.choice(PLAN["patients"])
        self.sign_in(mine["token"])
        self.case_id = mine["case_id"]
        self.study_uid, self.series_uid, self.sent = generate_uid(), generate_uid(), 0

    def next_instance(self) -> bytes:
        self.sent += 1
        dataset = dcmread(io.BytesIO(INSTANCE))
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = self.study_uid, self.series_uid
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        dataset.InstanceNumber = self.sent
        out = io.BytesIO()
        dataset.save_as(out, enforce_file_format=True)
        return out.getvalue()

    @task(3)
    def upload(self) -> None:
        instance = self.next_instance()
        with self.client.post(
            self.url(f"/api/cases/{self.case_id}/files"),
            files=[("files", ("ct.dcm", instance, "application/dicom"))],
            name="api: upload one instance",
            catch_response=True,
        ) as answer:
            if answer.status_code != 200 or not answer.json()["accepted"]:
                answer.failure(f"answered {answer.status_code}: {answer.text[:200]}")

    @task(1)
    def own_case(self) -> None:
        self.get(f"/api/cases/{self.case_id}", "api: own case")
