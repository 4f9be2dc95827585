"""Cluster-wide locks: one process at a time does a job, however many replicas run.

On PostgreSQL these are advisory locks, keyed by a stable 64-bit number derived from the
job's name. On SQLite a single node is the only supported shape, so a lock inside this
process is enough.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


def lock_key(name: str) -> int:
    """The advisory-lock key for ``name``: the first 8 bytes of its SHA-256, signed."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def try_xact_lock(connection: Connection, name: str) -> bool:
    """Take ``name`` for the rest of ``connection``'s transaction if nobody holds it.

    On PostgreSQL ``pg_try_advisory_xact_lock``; elsewhere (SQLite, whose transactions
    already hold the single write lock) always granted.
    """
    if connection.dialect.name != "postgresql":
        return True
    return bool(connection.execute(select(func.pg_try_advisory_xact_lock(lock_key(name)))).scalar())


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[bool]:
    """Hold ``name`` cluster-wide for the ``with`` block; yields False when another process
    (or thread) holds it, and the caller should then skip its work.

    On PostgreSQL the session-level advisory lock lives on a connection of its own, held for
    the block and released at its end (or by the server when that connection dies), so the
    work inside may commit as often as it likes.
    """
    if engine.dialect.name != "postgresql":
        with _local_lock(f"{engine.url}#{name}") as acquired:
            yield acquired
        return
    key = lock_key(name)
    with engine.connect() as connection:
        acquired = bool(connection.execute(select(func.pg_try_advisory_lock(key))).scalar())
        connection.commit()
        try:
            yield acquired
        finally:
            if acquired:
                connection.execute(select(func.pg_advisory_unlock(key)))
                connection.commit()


@contextmanager
def _local_lock(name: str) -> Iterator[bool]:
    """Per database and job name (``str(url)`` hides any password), never blocking."""
    with _local_guard:
        lock = _local_locks.setdefault(name, threading.Lock())
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()
