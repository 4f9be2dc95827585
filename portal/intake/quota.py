"""A case's upload quota: the bytes its files use and its unfinished resumable uploads reserve.

Read once per upload request (two ``SUM`` queries), then kept up to date by the request as it
stores files: a CD of 2,000 instances costs two sums, not 4,000 (see docs/scale.md, "Lists").
Files other requests store meanwhile are counted by those requests' own reads; the reservation
of each open resumable upload keeps two requests from promising the same room twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func
from sqlmodel import Session, col, select

from portal.db import utcnow
from portal.intake.models import CaseFile, TusUpload


def unfinished_uploads() -> tuple[ColumnElement[bool], ...]:
    """Conditions on ``TusUpload`` for uploads still open (their declared length is reserved)."""
    return (col(TusUpload.completed_at).is_(None), col(TusUpload.expires_at) > utcnow())


def bytes_used(*, session: Session, case_id: uuid.UUID) -> int:
    """The bytes the case's accepted files take."""
    used = session.exec(
        select(func.coalesce(func.sum(CaseFile.size), 0)).where(CaseFile.case_id == case_id)
    ).one()
    return int(used)


def bytes_reserved(
    *, session: Session, case_id: uuid.UUID, excluding: uuid.UUID | None = None
) -> int:
    """The bytes promised to the case's unfinished resumable uploads (but ``excluding``)."""
    query = select(func.coalesce(func.sum(TusUpload.length), 0)).where(
        TusUpload.case_id == case_id, *unfinished_uploads()
    )
    if excluding is not None:
        query = query.where(TusUpload.id != excluding)
    return int(session.exec(query).one())


@dataclass
class QuotaLedger:
    """The room one request has left in a case's quota."""

    left: int

    @classmethod
    def read(
        cls,
        *,
        session: Session,
        case_id: uuid.UUID,
        quota: int,
        excluding_upload: uuid.UUID | None = None,
    ) -> QuotaLedger:
        """The room left now, counting files and open uploads (but ``excluding_upload``)."""
        used = bytes_used(session=session, case_id=case_id)
        reserved = bytes_reserved(session=session, case_id=case_id, excluding=excluding_upload)
        return cls(left=max(0, quota - used - reserved))

    def spend(self, size: int) -> None:
        """This request stored a file of ``size`` bytes."""
        self.left = max(0, self.left - size)
