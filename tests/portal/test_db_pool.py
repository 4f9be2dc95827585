"""The PostgreSQL pool: idle connections are tested before use, busy ones are not pinged."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from portal import db
from portal.db import create_db_engine
from tests.services import PostgresServer

pytestmark = pytest.mark.postgres


def _pings(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counted: list[int] = []
    real = engine.dialect.do_ping

    def counting(dbapi_connection: object) -> bool:
        counted.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counting)
    return counted


def test_a_connection_returned_moments_ago_is_not_pinged(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_db_engine(postgres.url("postgres"))
    try:
        pings = _pings(engine, monkeypatch)
        for _ in range(5):
            with engine.connect() as connection:
                assert connection.execute(sa.text("SELECT 1")).scalar() == 1
        assert len(pings) == 1  # the new connection only
    finally:
        engine.dispose()


def test_an_idle_connection_closed_by_the_server_is_replaced_before_use(
    postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_db_engine(postgres.url("postgres"))
    try:
        with engine.connect() as connection:
            victim = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        admin = sa.create_engine(postgres.admin_url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
        admin.dispose()
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # it has been idle "long"
        pings = _pings(engine, monkeypatch)
        with engine.connect() as connection:
            now = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        assert now != victim and len(pings) >= 1
    finally:
        engine.dispose()
