"""PostgreSQL: ``pg_dump`` in custom format from an exported snapshot, ``pg_restore`` back.

The client tools must be at least as new as the server (``pg_dump`` refuses newer servers):
the binaries of the server's major version under ``/usr/lib/postgresql/<major>/bin`` (Debian,
Ubuntu; where the tests find theirs), else ``PORTAL_BACKUP_PG_BIN_DIR``, else ``PATH``.
The password travels in the environment (``PGPASSWORD``), never on a command line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg.conninfo
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from portal.backup.errors import BackupError, RestoreRefused
from portal.backup.snapshot import CaseKeyRow, Snapshot, case_key_row, read_snapshot

DUMP_FILE = "database.pgdump"
DEBIAN_BIN = Path("/usr/lib/postgresql")
_COPY_HEADER = re.compile(r"^COPY (?:\S+\.)?\"?case_keys\"? \((?P<columns>[^)]*)\) FROM stdin;$")
_LIBPQ_QUERY = {
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "host",
    "options",
    "target_session_attrs",
}


def server_major(engine: Engine) -> int:
    """The server's major version (15 for 15.4)."""
    with engine.connect() as connection:
        number = connection.execute(sa.text("SHOW server_version_num")).scalar_one()
    return int(number) // 10000


def tool(name: str, *, major: int, bin_dir: Path | None) -> str:
    """Path of ``pg_dump``/``pg_restore`` for a server of version ``major``.

    ``PORTAL_BACKUP_PG_BIN_DIR`` when set, else the Debian folder of that version, else the
    newest Debian folder (a newer client reads older servers and dumps), else ``PATH``.
    """
    candidates = [bin_dir / name] if bin_dir is not None else []
    candidates.append(DEBIAN_BIN / str(major) / "bin" / name)
    newest = sorted(DEBIAN_BIN.glob(f"*/bin/{name}"), key=_version_of_bin, reverse=True)
    candidates.extend(path for path in newest if _version_of_bin(path) >= major)
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} for PostgreSQL {major} was not found; install the client tools or set "
            "PORTAL_BACKUP_PG_BIN_DIR"
        )
    return found


def _version_of_bin(path: Path) -> int:
    folder = path.parent.parent.name
    return int(folder) if folder.isdigit() else 0


def dump(engine: Engine, target: Path, *, bin_dir: Path | None) -> tuple[Snapshot, str]:
    """Dump the whole database to ``target``; returns its snapshot and the server version.

    A repeatable-read transaction exports its snapshot and ``pg_dump --snapshot`` dumps that
    very view, so the rows read here for the manifest are the rows in the dump.
    """
    major = server_major(engine)
    pg_dump = tool("pg_dump", major=major, bin_dir=bin_dir)
    with engine.connect() as connection:
        connection = connection.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        with connection.begin():
            exported = connection.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
            version = str(connection.execute(sa.text("SHOW server_version")).scalar_one())
            snapshot = read_snapshot(connection)
            _run(
                [pg_dump, "--format=custom", f"--snapshot={exported}", f"--file={target}"],
                engine.url,
                action="pg_dump",
            )
    return snapshot, version


def case_keys_in_dump(dump_file: Path, *, major: int, bin_dir: Path | None) -> list[CaseKeyRow]:
    """The wrapped case keys in a dump, read without any database.

    ``pg_restore --data-only --table=case_keys -f -`` prints that table's ``COPY`` block,
    which is parsed here (psycopg has no public parser of the COPY text format).
    """
    pg_restore = tool("pg_restore", major=major, bin_dir=bin_dir)
    done = subprocess.run(
        [pg_restore, "--data-only", "--table=case_keys", "--file=-", str(dump_file)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise RestoreRefused(f"pg_restore could not read the dump: {_first_line(done.stderr)}")
    return parse_case_keys(done.stdout.decode("utf-8"))


def parse_case_keys(script: str) -> list[CaseKeyRow]:
    """The rows of the ``case_keys`` COPY block of a data-only SQL script."""
    lines = iter(script.splitlines())
    for line in lines:
        header = _COPY_HEADER.match(line)
        if header:
            break
    else:
        return []
    columns = [name.strip().strip('"') for name in header.group("columns").split(",")]
    case_at, key_at = columns.index("case_id"), columns.index("wrapped_key")
    rows = []
    for line in lines:
        if line == "\\.":
            break
        fields = line.split("\t")
        wrapped = _copy_text(fields[key_at])
        if not wrapped.startswith("\\x"):
            raise RestoreRefused("the dump's case keys are not in bytea hex format")
        rows.append(
            case_key_row(uuid.UUID(_copy_text(fields[case_at])), bytes.fromhex(wrapped[2:]))
        )
    return rows


def restore(dump_file: Path, engine: Engine, *, major: int, bin_dir: Path | None) -> None:
    """``pg_restore`` into the (empty) database of ``engine``, all or nothing."""
    pg_restore = tool("pg_restore", major=max(major, server_major(engine)), bin_dir=bin_dir)
    engine.dispose()
    _run(
        [
            pg_restore,
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            str(dump_file),
        ],
        engine.url,
        action="pg_restore",
        database_flag=True,
    )


def _run(argv: list[str], url: URL, *, action: str, database_flag: bool = False) -> None:
    conninfo, env = _libpq(url)
    done = subprocess.run(
        [*argv, f"--dbname={conninfo}"],
        capture_output=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise BackupError(f"{action} failed: {_first_line(done.stderr)}")


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A conninfo string without the password, and an environment carrying it."""
    params: dict[str, str] = {}
    if url.host:
        params["host"] = url.host
    if url.port:
        params["port"] = str(url.port)
    if url.username:
        params["user"] = url.username
    if url.database:
        params["dbname"] = url.database
    for name, value in url.query.items():
        if name in _LIBPQ_QUERY:
            params[name] = value if isinstance(value, str) else value[-1]
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return psycopg.conninfo.make_conninfo(**params), env


def _copy_text(field: str) -> str:
    """Undo COPY text escaping (``\\N`` is NULL, backslash escapes)."""
    if field == "\\N":
        return ""
    escapes = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}
    return re.sub(r"\\[\\tnr]", lambda match: escapes[match.group(0)], field)


def _first_line(stderr: bytes) -> str:
    """The first error line of a tool's output (its DETAIL lines may quote row values)."""
    lines = stderr.decode("utf-8", errors="replace").strip().splitlines()
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no message"])[0]
