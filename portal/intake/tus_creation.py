"""Opening a resumable upload (tus creation): the case must accept files and have room."""

from __future__ import annotations

import uuid

from sqlalchemy import func
from sqlmodel import Session, select

from portal.access import Principal
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.cases.models import Case
from portal.db import utcnow
from portal.errors import Conflict, InvalidInput, PayloadTooLarge
from portal.i18n import _, format_size, ngettext
from portal.intake import service as intake_service
from portal.intake import tus
from portal.intake.models import CaseFile, TusUpload
from portal.intake.pipeline import display_name
from portal.intake.quota import unfinished_uploads
from portal.objects import texts
from portal.settings import Settings


def create_upload(
    *,
    session: Session,
    settings: Settings,
    principal: Principal,
    ctx: AuditContext,
    length: int,
    metadata: dict[str, str],
) -> TusUpload:
    """Open a resumable upload into the caller's own case (which must accept files)."""
    if length < 0:
        raise InvalidInput(_("Upload-Length must be zero or more."))
    if length > settings.tus_max_bytes:
        raise PayloadTooLarge(
            _(
                "The upload is larger than the %(limit)s allowed.",
                limit=format_size(settings.tus_max_bytes),
            )
        )
    try:
        case_id = uuid.UUID(metadata.get("case_id", ""))
    except ValueError as exc:
        raise InvalidInput(
            _("Upload-Metadata must carry the case_id of the case to upload into.")
        ) from exc
    case = intake_service.case_for_upload(session=session, principal=principal, case_id=case_id)
    # One creation per case at a time (SQLite's BEGIN IMMEDIATE already serializes writers).
    session.exec(select(Case.id).where(Case.id == case.id).with_for_update()).one()
    _check_room(session=session, settings=settings, principal=principal, case=case, length=length)
    now = utcnow()
    upload = TusUpload(
        case_id=case.id,
        owner_id=principal.user_id,
        length=length,
        created_at=now,
        expires_at=tus.expiry(settings, created_at=now),
    )
    texts.for_case(session=session, case_id=case.id).seal(
        upload, "filename", display_name(metadata.get("filename"))
    )
    session.add(upload)
    audit_service.record(
        session=session,
        ctx=ctx,
        action="upload.create",
        entity_type="upload",
        entity_id=upload.id,
        case_id=case.id,
        details={"length": length},
    )
    session.commit()
    return upload


def _check_room(
    *, session: Session, settings: Settings, principal: Principal, case: Case, length: int
) -> None:
    """Refuse an upload over the open-upload caps or over the case's quota.

    The quota counts the case's files and the declared length of each unfinished upload
    (whatever of it has been staged so far), so uploads cannot together promise more.
    """
    per_case, reserved = session.exec(
        select(func.count(), func.coalesce(func.sum(TusUpload.length), 0))
        .where(*unfinished_uploads())
        .where(TusUpload.case_id == case.id)
    ).one()
    if per_case >= settings.tus_max_open_per_case:
        raise Conflict(
            ngettext(
                "This case already has %(num)s unfinished upload. "
                "Let it finish or cancel it before starting another.",
                "This case already has %(num)s unfinished uploads. "
                "Let them finish or cancel some before starting another.",
                per_case,
            )
        )
    per_account = session.exec(
        select(func.count())
        .select_from(TusUpload)
        .where(*unfinished_uploads())
        .where(TusUpload.owner_id == principal.user_id)
    ).one()
    if per_account >= settings.tus_max_open_per_account:
        raise Conflict(
            ngettext(
                "You already have %(num)s unfinished upload. "
                "Let it finish or cancel it before starting another.",
                "You already have %(num)s unfinished uploads. "
                "Let them finish or cancel some before starting another.",
                per_account,
            )
        )
    used = session.exec(
        select(func.coalesce(func.sum(CaseFile.size), 0)).where(CaseFile.case_id == case.id)
    ).one()
    if int(used) + int(reserved) + length > settings.case_quota_bytes:
        left = max(0, settings.case_quota_bytes - int(used) - int(reserved))
        raise PayloadTooLarge(
            _(
                "This upload (%(size)s) does not fit in the case's storage: %(left)s of "
                "%(quota)s are left, counting unfinished uploads.",
                size=format_size(length),
                left=format_size(left),
                quota=format_size(settings.case_quota_bytes),
            )
        )
