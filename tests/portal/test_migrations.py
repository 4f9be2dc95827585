"""The migrations produce exactly the schema the models describe, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from portal import migrate, schema  # noqa: F401 - registers every table
from portal.db import create_db_engine


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
