"""A resumable upload's chunks: each received stretch, stored as its own encrypted object."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

from sqlmodel import Session, col, select

from portal.intake.models import TusChunk
from portal.objects import service as objects_service
from portal.objects.models import StoredObject
from storage.vault import Vault

Chunks = list[tuple[TusChunk, StoredObject]]


def of_upload(*, session: Session, upload_id: uuid.UUID) -> Chunks:
    """The upload's chunks in offset order, with their stored objects; commits."""
    rows = session.exec(
        select(TusChunk, StoredObject)
        .join(StoredObject, col(StoredObject.id) == col(TusChunk.stored_object_id))
        .where(TusChunk.upload_id == upload_id)
        .order_by(col(TusChunk.offset))
    ).all()
    session.commit()
    return [(chunk, stored) for chunk, stored in rows]


def read_back(
    *, session: Session, vault: Vault, chunks: Chunks, heartbeat: Callable[[], None]
) -> Iterator[bytes]:
    """The plaintext of every chunk in order; ``heartbeat`` is called as it streams (it stops
    the stream by raising)."""
    for _chunk, stored in chunks:
        opened = objects_service.open_object(session=session, vault=vault, row=stored)
        session.commit()  # no transaction (SQLite: the write lock) stays open while it streams
        for piece in opened:
            heartbeat()
            yield piece


def forget(*, session: Session, vault: Vault, chunks: Chunks) -> None:
    """Delete the chunks' rows with the caller's transaction, then their objects (one left
    behind by a crash has no row, and the orphan sweep removes it)."""
    for chunk, stored in chunks:
        session.delete(session.get(TusChunk, chunk.id))
        session.delete(session.get(StoredObject, stored.id))
    session.commit()
    for _chunk, stored in chunks:
        vault.delete(stored.object_key)


def drop(*, session: Session, vault: Vault, chunks: Chunks) -> None:
    """Delete the chunks' objects, then their rows (an upload terminated or expired)."""
    for chunk, stored in chunks:
        vault.delete(stored.object_key)
        session.delete(session.get(TusChunk, chunk.id))
        session.delete(session.get(StoredObject, stored.id))
    session.commit()
