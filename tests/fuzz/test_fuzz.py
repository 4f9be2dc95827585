"""Fuzz the intake parsers with atheris for a bounded time; replay every seed and finding.

``FUZZ_SECONDS`` (default 12 per target) and ``FUZZ_SEED`` (default 1) change the run; a
longer campaign is described in docs/robustness.md. Inputs named ``found-*`` in a corpus are
past findings: replaying them is their regression test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).parent / "corpus"
SECONDS = int(os.environ.get("FUZZ_SECONDS", "12"))
SEED = int(os.environ.get("FUZZ_SEED", "1"))


SEEDS = [
    (target, path) for target in sorted(TARGETS) for path in sorted((CORPUS / target).iterdir())
]


@pytest.mark.parametrize(("target", "seed"), SEEDS, ids=[f"{t}/{p.name}" for t, p in SEEDS])
def test_every_seed_and_past_finding_is_accepted_or_rejected(target: str, seed: Path) -> None:
    TARGETS[target](seed.read_bytes())  # raises on anything but the documented refusal


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz(target: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    found = tmp_path / "found"
    found.mkdir()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.run",
            target,
            str(found),  # new inputs go here, the committed corpus stays as it is
            str(CORPUS / target),
            f"-max_total_time={SECONDS}",
            f"-seed={SEED}",
            "-timeout=10",
            "-rss_limit_mb=2048",
            f"-artifact_prefix={tmp_path}/",
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        },
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
        check=False,
    )
    crashes = sorted(path.name for path in tmp_path.glob("crash-*"))
    assert run.returncode == 0, f"{target}: {crashes}\n{run.stderr[-4000:]}"
