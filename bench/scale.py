"""``python -m bench.scale``: the portal at scale on distributed parts, under load.

Starts PostgreSQL and a SeaweedFS cluster of separate processes (``tests/cluster.py``), fills
the database (``bench/scale_data.py``: by default 10,000 cases in every status, 50 specialists
and 1,000,000 indexed instances), then loads one and then two ``portal serve`` replicas with
locust (headless, loopback; each replica runs ``--workers`` processes, and a warm-up run that
is not measured comes first): coordinators browsing and patients uploading, each user waiting
1 to 3 s. It prints p50/p95/p99 and errors per endpoint, samples ``pg_locks`` for requests waiting
on the audit tables, and doubles the users until the p95 of some endpoint passes 100 ms.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bench.scale_data import PASSWORD, Dataset, describe, fill
from portal import migrate
from portal.app import create_app
from portal.cases.consent import CURRENT_VERSION
from portal.db import create_db_engine
from portal.settings import Settings
from tests.cluster import SeaweedCluster
from tests.fixtures.app import make_settings
from tests.fixtures.live import ServerProcess
from tests.services import postgres_server

TARGET_MS = 100.0
LOCUSTFILE = Path(__file__).with_name("scale_locust.py")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--specialists", type=int, default=50)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument(
        "--seconds", type=int, default=120, help="each measured load run (p95 of ~500 pages)"
    )
    parser.add_argument(
        "--warm-up", type=int, default=15, help="seconds of load before each measured run"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes per replica (PORTAL_WORKERS)"
    )
    parser.add_argument("--max-users", type=int, default=800, help="stop doubling here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, postgres_server() as pg:
        root = Path(tmp)
        admin = sa.create_engine(pg.admin_url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text("CREATE DATABASE scale"))
        admin.dispose()
        cluster = SeaweedCluster(root / "seaweed", "bench-scale", secrets.token_urlsafe(24))
        cluster.start()
        try:
            settings = make_settings(root, pg.url("scale"), cluster)
            engine = create_db_engine(settings.database_url)
            migrate.upgrade(engine)
            engine.dispose()
            run(settings, root, args)
        finally:
            cluster.stop()


def run(settings: Settings, root: Path, args: argparse.Namespace) -> None:
    app = create_app(settings)
    with TestClient(app, base_url="http://bench") as client:
        data = fill(
            app, cases=args.cases, specialists_count=args.specialists, instances=args.instances
        )
        print(f"data set: {describe(data)}", flush=True)
        plan = _plan(app, client, data)
    plan_path = root / "plan.json"
    results: list[LoadResult] = []
    for replicas in (1, 2):
        servers = [ServerProcess(settings, root / f"replica-{n}.log") for n in range(replicas)]
        for server in servers:
            server.env["PORTAL_WORKERS"] = str(args.workers)
            server.start()
        try:
            plan_path.write_text(json.dumps({**plan, "hosts": [s.url for s in servers]}))
            users = args.users
            while True:
                # A server answers its first requests slowly (templates compiled, statement
                # caches filled, key shares fetched): a run that is not measured comes first.
                load(settings, plan_path, root, replicas, users, args.warm_up)
                result = load(settings, plan_path, root, replicas, users, args.seconds)
                result.workers = args.workers
                results.append(result)
                print(result.table(), flush=True)
                if result.worst_p95() > TARGET_MS or users * 2 > args.max_users:
                    break
                users *= 2
        finally:
            for server in servers:
                server.stop()
    print(summary(results, args.users))


def _plan(app: FastAPI, client: TestClient, data: Dataset) -> dict[str, object]:
    """Sign-in tokens for the load (each coordinator signs in once) and the cases it reads."""
    step = int(time.time() // 30)
    coordinators = []
    for person in data.coordinators:
        body = {"email": person.email, "password": PASSWORD, "otp": person.code(step)}
        answer = client.post("/api/auth/login", json=body)
        answer.raise_for_status()
        coordinators.append(answer.json()["access_token"])
    client.cookies.clear()
    with app.state.engine.connect() as connection:
        readable = connection.execute(
            sa.text("SELECT id FROM cases WHERE status <> 'draft' ORDER BY random() LIMIT 2000")
        ).scalars()
        cases = [str(case_id) for case_id in readable]
    patients = []
    for owner, email in list(data.patients.items())[:20]:
        answer = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        answer.raise_for_status()
        token = answer.json()["access_token"]
        client.cookies.clear()
        headers = {"Authorization": f"Bearer {token}"}
        body = {
            "subject": "Upload under load",
            "body_region": "spine",
            "clinical_question": "Uploading studies while the portal is busy.",
        }
        case = client.post("/api/cases", json=body, headers=headers)
        case.raise_for_status()
        case_id = case.json()["id"]
        consent = {"accepted": True, "version": CURRENT_VERSION}
        client.post(f"/api/cases/{case_id}/consent", json=consent, headers=headers)
        patients.append({"token": token, "case_id": case_id, "owner": str(owner)})
    return {
        "coordinators": coordinators,
        "cases": cases,
        "patients": patients,
        "cookie_name": app.state.settings.cookie_name,
    }


@dataclass
class LoadResult:
    replicas: int
    users: int
    seconds: int
    workers: int = 1
    rows: list[dict[str, str]] = field(default_factory=list)
    audit_lock_waits: int = 0
    lock_samples: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)

    def worst_p95(self) -> float:
        return max(
            (float(row["95%"]) for row in self.rows if row["Name"] != "Aggregated"), default=0
        )

    def errors(self) -> int:
        return sum(int(row["Failure Count"]) for row in self.rows if row["Name"] == "Aggregated")

    def table(self) -> str:
        lines = [
            f"\n{self.replicas} replica(s) of {self.workers} worker process(es), "
            f"{self.users} users, {self.seconds} s: "
            f"{self.audit_lock_waits} request(s) seen waiting on an audit-table lock "
            f"in {self.lock_samples} pg_locks samples",
            f"  {'endpoint':<34} {'requests':>8} {'errors':>6} {'p50':>6} {'p95':>6} {'p99':>6}",
        ]
        for row in self.rows:
            lines.append(
                f"  {row['Name'][:34]:<34} {row['Request Count']:>8} {row['Failure Count']:>6} "
                f"{row['50%']:>6} {row['95%']:>6} {row['99%']:>6}"
            )
        for failure in self.failures:  # what went wrong, as locust saw it
            lines.append(
                f"  error x{failure['Occurrences']}: {failure['Name']}: {failure['Error'][:160]}"
            )
        return "\n".join(lines)


def load(
    settings: Settings, plan: Path, root: Path, replicas: int, users: int, seconds: int
) -> LoadResult:
    """One headless locust run; ``pg_locks`` sampled twice a second meanwhile."""
    prefix = root / f"locust-{replicas}-{users}"
    result = LoadResult(replicas, users, seconds)
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_locks, args=(settings, result, stop), daemon=True)
    sampler.start()
    env = {**os.environ, "SCALE_PLAN": str(plan), "PYTHONPATH": str(Path.cwd())}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--users",
            str(users),
            "--spawn-rate",
            str(max(1, users // 5)),
            "--run-time",
            f"{seconds}s",
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=(root / "locust.log").open("ab"),
    )
    stop.set()
    sampler.join()
    with Path(f"{prefix}_stats.csv").open() as stats:
        result.rows = list(csv.DictReader(stats))
    with Path(f"{prefix}_failures.csv").open() as failures:
        result.failures = list(csv.DictReader(failures))
    return result


AUDIT_LOCK_WAITS = sa.text(
    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE NOT l.granted AND a.datname = current_database() "
    "AND (l.relation IN ('audit_events'::regclass, 'audit_head'::regclass) "
    "OR a.query ILIKE '%audit%')"
)


def _sample_locks(settings: Settings, result: LoadResult, stop: threading.Event) -> None:
    engine = create_db_engine(settings.database_url)
    try:
        with engine.connect() as connection:
            while not stop.wait(0.5):
                result.audit_lock_waits += int(connection.execute(AUDIT_LOCK_WAITS).scalar_one())
                result.lock_samples += 1
                connection.rollback()
    finally:
        engine.dispose()


def summary(results: list[LoadResult], base_users: int) -> str:
    lines = ["\nsummary (target: p95 <= 100 ms on every endpoint, 0 errors):"]
    for replicas in (1, 2):
        runs = [r for r in results if r.replicas == replicas]
        base = next((r for r in runs if r.users == base_users), None)
        if base is not None:
            verdict = "met" if base.worst_p95() <= TARGET_MS and base.errors() == 0 else "NOT met"
            worst = base.worst_p95()
            lines.append(
                f"  {replicas} replica(s), {base_users} users: worst p95 {worst:.0f} ms, "
                f"{base.errors()} errors, audit lock waits {base.audit_lock_waits}: {verdict}"
            )
        passed = [r.users for r in runs if r.worst_p95() > TARGET_MS]
        lines.append(
            f"  {replicas} replica(s): p95 passes 100 ms at {passed[0]} users"
            if passed
            else f"  {replicas} replica(s): p95 stayed under 100 ms up to {runs[-1].users} users"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
