"""What a ZIP (a hospital CD) held, kept beside the case's files; its names sealed."""

from __future__ import annotations

import json
import uuid

from sqlmodel import Session, col, delete

from portal.intake.archive import ArchivePlan
from portal.intake.models import ArchiveReport
from portal.objects import texts


def record(
    *,
    session: Session,
    case_id: uuid.UUID,
    upload_id: uuid.UUID | None,
    name: str,
    plan: ArchivePlan,
    accepted: int,
    rejected: int,
) -> ArchiveReport:
    """Add the report of an imported archive (the caller commits).

    A resumable upload has one report: one written by an earlier run of its completion job
    is replaced.
    """
    if upload_id is not None:
        session.exec(delete(ArchiveReport).where(col(ArchiveReport.upload_id) == upload_id))
    report = ArchiveReport(
        case_id=case_id,
        upload_id=upload_id,
        dicomdir_present=plan.dicomdir_present,
        referenced=plan.referenced,
        accepted=accepted,
        rejected=rejected,
    )
    sealer = texts.for_case(session=session, case_id=case_id)
    sealer.seal(report, "archive_name", name)
    sealer.seal(report, "missing", json.dumps(plan.missing))
    session.add(report)
    return report
