"""The ``portal`` command run as a user runs it: a subprocess with its own environment."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.logs import SensitiveValues


def portal(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    return subprocess.run(
        [sys.executable, "-m", "portal.cli", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def initialised(tmp_path: Path, sensitive: SensitiveValues) -> tuple[Path, str]:
    done = portal(tmp_path, "init", "--demo")
    assert done.returncode == 0, done.stderr
    for line in done.stdout.splitlines():
        if "password:" in line:
            sensitive.add(line.split("password:")[1].strip())
    return tmp_path, done.stdout


def test_init_creates_schema_keyring_and_demo_accounts_once(initialised: tuple[Path, str]):
    cwd, first = initialised
    assert "database is at the newest schema" in first
    for role in ("patient", "specialist", "coordinator", "admin"):
        assert f"{role}@demo.example.com" in first
    assert first.count("TOTP secret:") == 3  # every staff account, not the patient
    keyring = cwd / "var" / "keyring.json"
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600
    assert stat.S_IMODE((cwd / "var" / "demo-accounts.txt").stat().st_mode) == 0o600
    with sqlite3.connect(cwd / "var" / "portal.db") as db:
        regions, languages = db.execute(
            "SELECT body_regions, languages FROM specialist_profiles"
        ).fetchone()
    assert '"spine"' in regions and '"ru"' in languages  # demo cases find the demo specialist

    again = portal(cwd, "init", "--demo")
    assert again.returncode == 0
    assert "password:" not in again.stdout and "keyring" not in again.stdout


def test_the_demo_has_the_treatment_guide_and_seeding_again_adds_nothing(
    initialised: tuple[Path, str],
):
    cwd, first = initialised
    assert "treatment guide: 22 added" in first
    with sqlite3.connect(cwd / "var" / "portal.db") as db:
        slugs = [row[0] for row in db.execute("SELECT slug FROM treatment_options ORDER BY slug")]
    assert slugs == [
        "embolization",
        "observation",
        "radiotherapy",
        "surgical-removal",
        "vertebroplasty",
    ]
    seeded = portal(cwd, "treatment", "seed")
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    assert "0 added, 0 updated, 22 unchanged" in seeded.stdout


def test_audit_verify_passes_then_fails_after_a_hand_edit(initialised: tuple[Path, str]):
    cwd, _ = initialised
    only_checked = portal(cwd, "audit", "verify", "--no-seal")
    assert only_checked.returncode == 0, only_checked.stdout + only_checked.stderr
    # The four demo accounts and the treatment guide's seed.
    assert "5 row(s) not sealed yet" in only_checked.stdout
    assert "audit trail intact: 0 rows" in only_checked.stdout
    ok = portal(cwd, "audit", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "not sealed" not in ok.stdout
    assert "audit trail intact: 5 rows" in ok.stdout

    with sqlite3.connect(cwd / "var" / "portal.db") as connection:
        connection.execute("DROP TRIGGER audit_events_no_update")
        connection.execute('UPDATE audit_events SET details = \'{"role":"admin"}\' WHERE seq = 2')
    broken = portal(cwd, "audit", "verify")
    assert broken.returncode == 1
    assert "BROKEN at row 2" in broken.stdout and "altered" in broken.stdout


def test_users_add_enrols_staff_in_totp_and_refuses_weak_passwords(initialised: tuple[Path, str]):
    cwd, _ = initialised
    added = portal(
        cwd,
        "users",
        "add",
        "--role",
        "specialist",
        "--email",
        "dr.roth@example.org",
        "--name",
        "Dr Roth",
        "--language",
        "de",
        "--password-stdin",
        stdin="a long and private passphrase 9\n",
    )
    assert added.returncode == 0, added.stdout + added.stderr
    assert "created specialist dr.roth@example.org" in added.stdout
    assert "otpauth://totp/" in added.stdout

    weak = portal(
        cwd,
        "users",
        "add",
        "--role",
        "coordinator",
        "--email",
        "c@example.org",
        "--name",
        "C",
        "--password-stdin",
        stdin="password\n",
    )
    assert weak.returncode == 2
    assert "at least 12 characters" in weak.stdout
    duplicate = portal(
        cwd,
        "users",
        "add",
        "--role",
        "admin",
        "--email",
        "DR.ROTH@example.org",
        "--name",
        "X",
        "--password-stdin",
        stdin="another long passphrase 77\n",
    )
    assert duplicate.returncode == 2 and "already exists" in duplicate.stdout


def test_bad_configuration_is_reported_not_raised(tmp_path: Path):
    env = {**os.environ, "PORTAL_SESSION_IDLE_MINUTES": "soon"}
    done = subprocess.run(
        [sys.executable, "-m", "portal.cli", "init"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "configuration error" in done.stderr and "session_idle_minutes" in done.stderr


def test_users_add_gives_a_specialist_their_profile(initialised: tuple[Path, str]):
    cwd, _ = initialised
    options = [
        "--specialty",
        "neuroradiology",
        "--specialty",
        "spine_surgery",
        "--region",
        "spine",
        "--modality",
        "mr",
        "--speaks",
        "ru",
        "--credentials",
        "Neuroradiologist, licence 12345",
        "--max-active",
        "4",
    ]
    added = portal(
        cwd,
        *("users", "add", "--role", "specialist", "--email", "dr.ivanova@example.org"),
        *("--name", "Dr Ivanova", "--password-stdin", *options),
        stdin="a long and private passphrase 9\n",
    )
    assert added.returncode == 0, added.stdout + added.stderr
    with sqlite3.connect(cwd / "var" / "portal.db") as db:
        row = db.execute(
            "SELECT specialties, body_regions, modalities, languages, credentials, "
            "max_active_cases FROM specialist_profiles JOIN users ON users.id = user_id "
            "WHERE users.email = 'dr.ivanova@example.org'"
        ).fetchone()
    assert row == (
        '["neuroradiology", "spine_surgery"]',
        '["spine"]',
        '["MR"]',
        '["ru"]',
        "Neuroradiologist, licence 12345",
        4,
    )
    wrong = portal(
        cwd,
        *("users", "add", "--role", "specialist", "--email", "x@example.org", "--name", "X"),
        *("--password-stdin", "--modality", "XRAY"),
        stdin="a long and private passphrase 9\n",
    )
    assert wrong.returncode == 2 and "unknown modality XRAY" in wrong.stdout
    not_specialist = portal(
        cwd,
        *("users", "add", "--role", "coordinator", "--email", "y@example.org", "--name", "Y"),
        *("--password-stdin", "--region", "spine"),
        stdin="a long and private passphrase 9\n",
    )
    assert not_specialist.returncode != 0
    assert "are for specialists" in not_specialist.stderr + not_specialist.stdout
