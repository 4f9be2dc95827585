"""Database engine, session handling and the column types every model shares."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import DateTime, String, TypeDecorator
from sqlmodel import Session, create_engine


def utcnow() -> datetime:
    """The current time, timezone-aware UTC, truncated to microseconds like the database."""
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, hands back aware UTC, and refuses naive datetimes on the way in.

    SQLite keeps no timezone and PostgreSQL ``timestamp`` neither; storing UTC and re-attaching
    the zone on load makes both backends round-trip identically (the audit chain depends on it).
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


SQLITE_BUSY_SECONDS = 30
READ_ONLY = "portal_read_only"


def create_db_engine(url: str, *, echo: bool = False) -> Engine:
    """Build the engine for ``url``; SQLite gets WAL, foreign keys and serialised writers.

    ``hide_parameters`` keeps bound values (names, e-mails) out of error messages and logs.
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            hide_parameters=True,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS},
        )
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, echo=echo, hide_parameters=True, pool_size=10, max_overflow=20)
    _ping_after_idle(engine)
    return engine


PING_AFTER_IDLE_SECONDS = 10.0
"""A pooled connection unused for longer is tested before it is handed out."""


def _ping_after_idle(engine: Engine) -> None:
    """Test a pooled connection before use only when it has been idle.

    A connection that was idle may have been closed under us (a database restart, a firewall's
    idle timeout): it is pinged, and a dead one is replaced before the request sees it. One that
    was returned moments ago is handed out as it is: a page checks out a connection after each
    commit (eight times for a case page), and a ping on each was a round trip each. A database
    restart while connections are busy is still noticed: the first statement on a dead
    connection fails, and SQLAlchemy then discards every connection of the pool.
    """

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _handed_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED_AT)
        if returned is not None and time.monotonic() - returned < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool drops this connection and hands out another (up to three tries).
            raise DisconnectionError("a pooled connection was closed while idle") from exc


_RETURNED_AT = "portal_returned_at"


def begin_read_only(session: Session) -> None:
    """Start the session's next transaction as a reader that will not write.

    On SQLite it begins deferred: it takes no write lock, so it neither waits for writers
    nor holds them up (WAL readers see a consistent snapshot). Writing in it is a bug: the
    upgrade to a writer can fail with "database is locked". Elsewhere this changes nothing.
    When the session is already inside a transaction (a caller that writes, such as the end
    of a resumable upload), the reads simply join it.
    """
    if session.in_transaction():
        return
    session.connection(execution_options={READ_ONLY: True})


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN until the first write, so two requests
    # that read and then write deadlock on upgrade. We take the write lock at BEGIN instead
    # (BEGIN IMMEDIATE): SQLite has one writer anyway, and the audit chain needs that order.
    # Transactions declared read-only (``begin_read_only``) begin deferred and never write.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        # SQLite's lower() folds ASCII only; names in DICOM are often Cyrillic, Greek, CJK.
        dbapi_connection.create_function("casefold", 1, _casefold, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN DEFERRED")
            return
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session for scripts and CLI commands: commits on success, rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


class StrEnumColumn(TypeDecorator[StrEnum]):
    """A ``StrEnum`` stored as plain text (no database enum type), loaded back as the enum."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: StrEnum | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum(value)


def _casefold(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


class casefold(FunctionElement[str]):
    """Unicode case-folded text, for case-insensitive matching: ``lower()`` on PostgreSQL
    (locale-aware), a registered Python ``str.casefold`` on SQLite."""

    type = String()
    inherit_cache = True
    name = "casefold"


@compiles(casefold)
def _casefold_default(element: casefold, compiler: Any, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(casefold, "sqlite")
def _casefold_sqlite(element: casefold, compiler: Any, **kw: Any) -> str:
    return f"casefold({compiler.process(element.clauses, **kw)})"
