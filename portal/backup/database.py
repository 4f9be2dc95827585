"""The database as a whole, whichever backend: dump, read the keys of a dump, restore."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from portal.backup import postgres, sqlite
from portal.backup.errors import RestoreRefused
from portal.backup.manifest import DatabasePart
from portal.backup.snapshot import CaseKeyRow, Snapshot, tables_in


def dump(
    engine: Engine, directory: Path, *, pg_bin_dir: Path | None
) -> tuple[DatabasePart, Snapshot]:
    """Dump the live database into ``directory``; what the manifest says of it, and its snapshot."""
    if engine.dialect.name == "postgresql":
        snapshot, version = postgres.dump(
            engine, directory / postgres.DUMP_FILE, bin_dir=pg_bin_dir
        )
        part = DatabasePart(
            backend="postgresql",
            file=postgres.DUMP_FILE,
            server_version=version,
            table_rows=snapshot.table_rows,
        )
        return part, snapshot
    snapshot = sqlite.dump(engine, directory / sqlite.DUMP_FILE)
    return DatabasePart(
        backend="sqlite", file=sqlite.DUMP_FILE, table_rows=snapshot.table_rows
    ), snapshot


def check_target(engine: Engine, part: DatabasePart) -> None:
    """Refuse a target of the other backend, or one that already holds anything."""
    backend = "postgresql" if engine.dialect.name == "postgresql" else "sqlite"
    if backend != part.backend:
        raise RestoreRefused(
            f"this is a {part.backend} backup but the portal's database is {backend}; "
            "restore into the same kind of database"
        )
    if backend == "sqlite" and not sqlite.database_path(engine).exists():
        return
    with engine.connect() as connection:
        present = tables_in(connection)
    if present:
        raise RestoreRefused(
            f"the target database is not empty ({len(present)} tables, e.g. {present[0]}); "
            "restore only into a new, empty database"
        )


def case_keys_in_dump(
    part: DatabasePart, directory: Path, *, pg_bin_dir: Path | None
) -> list[CaseKeyRow]:
    """The wrapped case keys of the dumped database, read without touching the target."""
    if part.backend == "postgresql":
        return postgres.case_keys_in_dump(
            directory / part.file, major=_major(part), bin_dir=pg_bin_dir
        )
    return sqlite.case_keys_in_dump(directory / part.file)


def restore(
    part: DatabasePart, directory: Path, engine: Engine, *, pg_bin_dir: Path | None
) -> None:
    """Load the dump into the (checked empty) target database."""
    if part.backend == "postgresql":
        postgres.restore(directory / part.file, engine, major=_major(part), bin_dir=pg_bin_dir)
    else:
        sqlite.restore(directory / part.file, engine)


def _major(part: DatabasePart) -> int:
    version = part.server_version or ""
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0
