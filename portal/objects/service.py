"""Put and read case objects through the vault; key rotation, scrubbing and erasure."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from portal.db import utcnow
from portal.objects.models import CaseKey, StoredObject
from storage.keyprovider import WrappedKey
from storage.keyring import LocalKeyring
from storage.scrub import ExpectedObject, ScrubReport, scrub
from storage.vault import Source, Vault
from storage.vault import StoredObject as StoredBytes


def find_case_key(*, session: Session, case_id: uuid.UUID) -> bytes | None:
    """The case's wrapped data key, if it has one yet (a read: safe in a read-only session)."""
    existing = session.get(CaseKey, case_id)
    return existing.wrapped_key if existing is not None else None


def case_key(*, session: Session, vault: Vault, case_id: uuid.UUID) -> bytes:
    """The case's wrapped data key, created on first use (the caller commits)."""
    existing = session.get(CaseKey, case_id)
    if existing is not None:
        return existing.wrapped_key
    wrapped = vault.new_case_key(str(case_id))
    envelope = WrappedKey.decode(wrapped)
    session.add(
        CaseKey(
            case_id=case_id, wrapped_key=wrapped, provider=envelope.provider, kek_id=envelope.kek_id
        )
    )
    session.flush()
    return wrapped


@dataclass
class StagedObjects:
    """Objects put during one unit of work, deleted again if that work fails."""

    vault: Vault
    object_keys: list[str] = field(default_factory=list)

    def discard(self) -> None:
        for object_key in self.object_keys:
            self.vault.delete(object_key)
        self.object_keys.clear()


@contextmanager
def staged(vault: Vault) -> Iterator[StagedObjects]:
    """Delete the block's stored objects if it raises: no object outlives its database row."""
    objects = StagedObjects(vault)
    try:
        yield objects
    except BaseException:
        objects.discard()
        raise


def store(
    *, session: Session, vault: Vault, case_id: uuid.UUID, source: Source, staging: StagedObjects
) -> StoredObject:
    """Encrypt and store ``source`` for the case and add its row (the caller commits)."""
    wrapped = case_key(session=session, vault=vault, case_id=case_id)
    stored = vault.put(case_id=str(case_id), wrapped_key=wrapped, source=source)
    staging.object_keys.append(stored.object_key)
    return record(session=session, case_id=case_id, stored=stored)


def record(*, session: Session, case_id: uuid.UUID, stored: StoredBytes) -> StoredObject:
    """Add the row that vouches for an object the vault just stored (the caller commits)."""
    row = StoredObject(
        case_id=case_id,
        object_key=stored.object_key,
        size=stored.size,
        stored_size=stored.stored_size,
        sha256=stored.sha256,
    )
    session.add(row)
    session.flush()  # rows that refer to it may follow: the unit of work does not order by FK
    return row


def open_object(*, session: Session, vault: Vault, row: StoredObject) -> Iterator[bytes]:
    """Stream the plaintext; the SHA-256 is verified at the end of the read."""
    wrapped = _wrapped_key(session, row.case_id)
    return vault.open(
        case_id=str(row.case_id), wrapped_key=wrapped, object_key=row.object_key, sha256=row.sha256
    )


def read_range(*, session: Session, vault: Vault, row: StoredObject, start: int, end: int) -> bytes:
    wrapped = _wrapped_key(session, row.case_id)
    return vault.read_range(
        case_id=str(row.case_id),
        wrapped_key=wrapped,
        object_key=row.object_key,
        start=start,
        end=end,
    )


def _wrapped_key(session: Session, case_id: uuid.UUID) -> bytes:
    key = session.get(CaseKey, case_id)
    if key is None:
        raise LookupError(f"case {case_id} has no data key (erased?)")
    return key.wrapped_key


@dataclass(frozen=True)
class RotationReport:
    new_kek_id: str | None
    rewrapped: int
    still_under: dict[str, int]


def rotate_keys(*, session: Session, vault: Vault, batch: int = 200) -> RotationReport:
    """Add a KEK version (local keyring) and re-wrap every case key; objects are untouched.

    With KMS the key material rotates inside KMS; re-wrapping moves every case key onto it.
    Commits per batch, so an interrupted rotation resumes where it stopped.
    """
    new_kek_id = None
    if isinstance(vault.keys, LocalKeyring):
        new_kek_id = str(vault.keys.rotate())
    rewrapped = 0
    last_case: uuid.UUID | None = None
    while True:
        query = select(CaseKey).order_by(col(CaseKey.case_id)).limit(batch)
        if last_case is not None:
            query = query.where(col(CaseKey.case_id) > last_case)
        keys = session.exec(query).all()
        if not keys:
            break
        for key in keys:
            key.wrapped_key = vault.rewrap(key.wrapped_key, case_id=str(key.case_id))
            key.kek_id = WrappedKey.decode(key.wrapped_key).kek_id
            key.rewrapped_at = utcnow()
            session.add(key)
            rewrapped += 1
        session.commit()
        last_case = keys[-1].case_id
    return RotationReport(new_kek_id, rewrapped, keys_per_kek(session=session))


def keys_per_kek(*, session: Session) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kek_id in session.exec(select(CaseKey.kek_id)).all():
        counts[kek_id] = counts.get(kek_id, 0) + 1
    return counts


class KekStillInUse(Exception):
    """Case keys are still wrapped under the KEK version to retire."""


def retire_kek(*, session: Session, vault: Vault, version: int) -> None:
    """Destroy an old keyring version after rotation has moved every case key off it."""
    if not isinstance(vault.keys, LocalKeyring):
        raise TypeError("retiring versions applies to the local keyring; KMS manages its own")
    in_use = keys_per_kek(session=session).get(str(version), 0)
    if in_use:
        raise KekStillInUse(f"{in_use} case key(s) are still wrapped under version {version}")
    vault.keys.retire(version)


def scrub_storage(*, session: Session, vault: Vault) -> ScrubReport:
    """Read back every object the database knows and list the bucket for strays."""
    rows = session.exec(
        select(StoredObject, CaseKey).join(
            CaseKey, col(CaseKey.case_id) == col(StoredObject.case_id), isouter=True
        )
    ).all()
    expected = [
        ExpectedObject(
            object_key=row.object_key,
            case_id=str(row.case_id),
            wrapped_key=key.wrapped_key if key is not None else b"",
            sha256=row.sha256,
        )
        for row, key in rows
    ]
    return scrub(vault, expected)
