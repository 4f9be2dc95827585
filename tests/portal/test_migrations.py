"""The migrations produce exactly the schema the models describe, on both backends."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from portal import migrate, schema  # noqa: F401 - registers every table
from portal.db import create_db_engine
from tests.services import PostgresServer


def test_models_and_migrations_agree(database_url: str):
    engine = create_db_engine(database_url)
    try:
        assert migrate.is_current(engine)
        with engine.connect() as connection:
            differences = compare_metadata(
                MigrationContext.configure(connection), SQLModel.metadata
            )
    finally:
        engine.dispose()
    assert differences == [], "write a migration for: " + repr(differences)


def test_upgrade_is_idempotent(database_url: str):
    engine = create_db_engine(database_url)
    try:
        migrate.upgrade(engine)
        migrate.upgrade(engine)
        assert migrate.is_current(engine)
    finally:
        engine.dispose()


def test_replicas_starting_together_migrate_once(postgres: PostgresServer):
    """Three ``portal init`` at the same moment on an empty PostgreSQL database: all succeed."""
    name = f"m_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres.admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engines = [create_db_engine(postgres.url(name)) for _ in range(3)]
    start = threading.Barrier(len(engines))

    def init(engine: Engine) -> None:
        start.wait()
        migrate.upgrade(engine)

    try:
        with ThreadPoolExecutor(len(engines)) as pool:
            for done in [pool.submit(init, engine) for engine in engines]:
                done.result()  # raises what a replica's migration raised
        assert migrate.is_current(engines[0])
    finally:
        for engine in engines:
            engine.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
