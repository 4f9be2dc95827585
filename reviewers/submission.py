"""A case handed over for review, withdrawn, or closed: the patient's and coordinator's moves.

Each changes the case's status, which only ``workflow`` does; submitting also sets the deadline
and offers the case to the first matching specialist. (These lived in ``portal/cases/service.py``,
which sits below ``reviewers`` and so may not call the workflow.)
"""

from __future__ import annotations

import uuid

from sqlmodel import Session, select

from portal import access
from portal.access import Principal
from portal.audit.service import AuditContext
from portal.cases import service as cases_service
from portal.cases.models import Case, CaseStatus
from portal.db import utcnow
from portal.errors import Conflict
from portal.i18n import _
from portal.intake.models import CaseFile, TusUpload, UploadStatus
from portal.labels import word
from portal.settings import Settings
from reviewers import assignment, deadlines, workflow


def submit_case(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    settings: Settings,
    case_id: uuid.UUID,
) -> Case:
    """Hand the case over for review (needs the current consent and a file), then match it."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.submit"
    )
    case = workflow.lock_case(session=session, case=case)
    if case.status != CaseStatus.draft:
        raise Conflict(
            _("This case was already submitted (it is %(status)s).", status=word(case.status))
        )
    if cases_service.current_consent(session=session, case_id=case.id) is None:
        raise Conflict(_("Accept the consent text before submitting the case."))
    if session.exec(select(CaseFile.id).where(CaseFile.case_id == case.id)).first() is None:
        raise Conflict(_("Upload at least one image or record before submitting the case."))
    if session.exec(
        select(TusUpload.id)
        .where(TusUpload.case_id == case.id)
        .where(TusUpload.status == UploadStatus.assembling.value)
    ).first():  # its job would find the case no longer accepting files
        raise Conflict(
            _("Some uploaded files are still being processed. Submit the case when they are done.")
        )
    now = utcnow()
    workflow.check(case=case, to=CaseStatus.submitted, principal=principal)
    # The deadline first: the patient's receipt, sent on submission, tells them when to expect
    # the opinion.
    case.due_at = deadlines.due_at(
        now,
        case.priority,
        standard_business_days=settings.standard_due_business_days,
        urgent_hours=settings.urgent_due_hours,
    )
    workflow.transition(
        session=session,
        case=case,
        to=CaseStatus.submitted,
        principal=principal,
        ctx=ctx,
        base_url=settings.base_url,
        now=now,
    )
    assignment.offer_next(
        session=session, case=case, principal=None, ctx=ctx, settings=settings, now=now
    )
    session.commit()
    return case


def cancel_case(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    settings: Settings,
    case_id: uuid.UUID,
    reason: str | None,
) -> Case:
    """The patient (or a coordinator) withdraws a case that no specialist has taken yet."""
    case = access.case_for(session=session, principal=principal, case_id=case_id)
    case = workflow.lock_case(session=session, case=case)
    workflow.transition(
        session=session,
        case=case,
        to=CaseStatus.cancelled,
        principal=principal,
        ctx=ctx,
        base_url=settings.base_url,
        note=reason,
    )
    session.commit()
    return case


def close_case(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    settings: Settings,
    case_id: uuid.UUID,
) -> Case:
    """The opinion is delivered and nothing more is expected: the case is closed."""
    case = access.case_for(session=session, principal=principal, case_id=case_id)
    case = workflow.lock_case(session=session, case=case)
    workflow.transition(
        session=session,
        case=case,
        to=CaseStatus.closed,
        principal=principal,
        ctx=ctx,
        base_url=settings.base_url,
    )
    session.commit()
    return case
