"""SQLite: a consistent copy with the online backup API, while the portal keeps running."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from portal.backup.errors import BackupError, RestoreRefused
from portal.backup.snapshot import CaseKeyRow, Snapshot, read_case_keys, read_snapshot

DUMP_FILE = "database.sqlite3"


def database_path(engine: Engine) -> Path:
    """The database file behind a SQLite engine."""
    name = engine.url.database
    if not name or name == ":memory:" or name.startswith("file:"):
        raise RestoreRefused("backup and restore need a SQLite database file, not memory or a URI")
    return Path(name)


def dump(engine: Engine, target: Path) -> Snapshot:
    """Copy the live database to ``target`` in one step of the backup API; read it back.

    One step holds a read lock for the copy, so writers wait (WAL: they do not) and the copy
    is one consistent snapshot. The copy is switched out of WAL so reading it later creates
    no side files in the backup directory.
    """
    source_path = database_path(engine)
    try:
        with (
            closing(sqlite3.connect(source_path)) as source,
            closing(sqlite3.connect(target)) as copy,
        ):
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite could not copy the database: {exc}") from exc
    with opened_read_only(target) as connection:
        return read_snapshot(connection)


def case_keys_in_dump(dump_file: Path) -> list[CaseKeyRow]:
    """The wrapped case keys in a backup copy, read without writing anything."""
    with opened_read_only(dump_file) as connection:
        return read_case_keys(connection)


def restore(dump_file: Path, engine: Engine) -> None:
    """Copy the backup into the (empty) database file of ``engine`` in one step."""
    target_path = database_path(engine)
    target_path.parent.mkdir(parents=True, exist_ok=True)
    engine.dispose()  # no pooled connection may hold the file while its pages are replaced
    with (
        closing(_connect_read_only(dump_file)) as source,
        closing(sqlite3.connect(target_path)) as target,
    ):
        source.backup(target)


@contextmanager
def opened_read_only(path: Path) -> Iterator[Connection]:
    """A SQLAlchemy connection on a file that is opened immutable: nothing is ever written."""
    engine = sa.create_engine("sqlite://", creator=lambda: _connect_read_only(path))
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def _connect_read_only(path: Path) -> sqlite3.Connection:
    uri = f"file:{quote(str(path.resolve()))}?mode=ro&immutable=1"
    return sqlite3.connect(uri, uri=True, check_same_thread=False)
