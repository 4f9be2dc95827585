"""Seal the free text that migration 0006 set aside in ``pending_texts``.

Runs at start-up (``portal.app``'s lifespan) and as ``portal texts seal``. Each case is sealed
and its pending rows deleted in one transaction, so an interrupted run resumes where it
stopped and a value is never both sealed and pending.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session, SQLModel, col, select

from portal.cases.models import Case, CaseEvent
from portal.intake.models import ArchiveReport, CaseFile, TusUpload
from portal.objects import texts
from portal.objects.models import PendingText
from reviewers.models import CaseAssignment, CaseQuestion, Opinion, OpinionAddendum

SEALED_TABLES: dict[str, type[SQLModel]] = {
    "tus_uploads": TusUpload,
    "archive_reports": ArchiveReport,
    "cases": Case,
    "case_events": CaseEvent,
    "case_questions": CaseQuestion,
    "opinions": Opinion,
    "opinion_addenda": OpinionAddendum,
    "case_files": CaseFile,
    "case_assignments": CaseAssignment,
}


def pending_count(*, session: Session) -> int:
    """How many clear values still wait to be sealed."""
    return len(session.exec(select(PendingText.id)).all())


def seal_pending(*, session: Session) -> int:
    """Seal every value waiting in ``pending_texts``; returns how many were sealed.

    The session must have the vault bound (``portal.objects.texts.bind_vault``).
    """
    sealed = 0
    case_ids = session.exec(select(PendingText.case_id).distinct()).all()
    session.commit()
    for case_id in case_ids:
        sealed += _seal_case(session, case_id)
        session.commit()
    return sealed


def _seal_case(session: Session, case_id: uuid.UUID) -> int:
    sealer = texts.for_case(session=session, case_id=case_id)
    pending = session.exec(
        select(PendingText).where(PendingText.case_id == case_id).order_by(col(PendingText.id))
    ).all()
    for item in pending:
        model = SEALED_TABLES[item.table_name]
        row: Any = session.get(model, _row_key(item))
        if row is not None:
            sealer.seal(row, item.column_name, item.value)
            session.add(row)
        session.delete(item)
    session.flush()
    return len(pending)


def _row_key(item: PendingText) -> int | uuid.UUID:
    return int(item.row_id) if item.table_name == "case_events" else uuid.UUID(item.row_id)
