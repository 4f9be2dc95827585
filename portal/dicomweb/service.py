"""DICOMweb of a case: each request checked in ``portal.access`` and audited once.

The routes parse and respond; this module finds the case, asks whether the caller may, runs
the search, retrieval or store, and writes one audit record for the request (with the viewer
token that was used, if any).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from sqlmodel import Session

from portal import access
from portal.audit import service as audit_service
from portal.cases.models import Case
from portal.db import begin_read_only, utcnow
from portal.dicomweb import qido, retrieve, stow
from portal.dicomweb.attributes import Level
from portal.dicomweb.deps import DicomwebCaller
from portal.dicomweb.models import DicomwebToken
from portal.errors import InvalidInput
from portal.i18n import _
from portal.intake import service as intake_service
from portal.intake.models import UploadResult
from portal.intake.multipart import MultipartStream
from portal.intake.pipeline import Ingest
from portal.settings import Settings
from portal.viewer import service as viewer_service
from portal.viewer.cache import ViewerState
from storage.vault import Vault

Parts = Iterator[tuple[str, Iterator[bytes]]]


def readable_case(*, session: Session, caller: DicomwebCaller, case_id: uuid.UUID) -> Case:
    """The case, if the caller may read its DICOMweb (404 otherwise, like a missing case).

    Begins a read-only transaction (on SQLite: no write lock) that the lookups that follow
    join; only the audit record at the end writes, briefly.
    """
    begin_read_only(session)
    case = access.case_for(
        session=session, principal=caller.principal, case_id=case_id, action="case.dicomweb.read"
    )
    return case


def audit(
    *,
    session: Session,
    caller: DicomwebCaller,
    case: Case,
    action: str,
    details: dict[str, Any],
) -> None:
    """One record for the request; the token's last use moves with it. Commits."""
    if session.in_transaction():
        session.commit()  # end the reads: the write below takes the lock for itself alone
    if caller.token_id is not None:
        details = {**details, "token": str(caller.token_id)}
        token = session.get(DicomwebToken, caller.token_id)
        if token is not None:
            token.last_used_at = utcnow()
            session.add(token)
    audit_service.record(
        session=session, ctx=caller.ctx, action=action, case_id=case.id, details=details
    )
    session.commit()


def search(
    *,
    session: Session,
    caller: DicomwebCaller,
    case_id: uuid.UUID,
    query: qido.Search,
    root_url: str,
) -> qido.Found:
    """QIDO-RS over the case's index."""
    case = readable_case(session=session, caller=caller, case_id=case_id)
    found = qido.run(session=session, case_id=case.id, search=query, base_url=root_url)
    details = {"level": query.level.name, "results": len(found.items)}
    audit(session=session, caller=caller, case=case, action="dicomweb.search", details=details)
    return found


def instances(
    *,
    session: Session,
    caller: DicomwebCaller,
    case_id: uuid.UUID,
    study_uid: str,
    series_uid: str | None = None,
    instance_uid: str | None = None,
    action: str,
) -> tuple[list[retrieve.Located], bytes]:
    """The instances a retrieval names, and the case's wrapped key to read them; audited."""
    case = readable_case(session=session, caller=caller, case_id=case_id)
    found, wrapped = retrieve.locate(
        session=session,
        case_id=case.id,
        study_uid=study_uid,
        series_uid=series_uid,
        instance_uid=instance_uid,
    )
    level = Level.instance if instance_uid else Level.series if series_uid else Level.study
    details = {"level": level.name, "instances": len(found)}
    audit(session=session, caller=caller, case=case, action=action, details=details)
    return found, wrapped


def rendered(
    *,
    session: Session,
    vault: Vault,
    state: ViewerState,
    located: retrieve.Located,
    frame: int,
    max_side: int | None,
) -> bytes:
    """A frame (from 1) of an instance already found through :func:`instances`, as PNG."""
    return viewer_service.instance_png(
        session=session,
        vault=vault,
        state=state,
        instance=located.instance,
        stored_object_id=located.stored.id,
        index=frame - 1,
        max_side=max_side,
    )


def storable_case(*, session: Session, caller: DicomwebCaller, case_id: uuid.UUID) -> Case:
    """The case, if the caller may store instances in it now (404, 403 or 409 otherwise)."""
    return intake_service.case_for_upload(
        session=session, principal=caller.principal, case_id=case_id
    )


def store(
    *,
    session: Session,
    vault: Vault,
    settings: Settings,
    caller: DicomwebCaller,
    case: Case,
    stream: MultipartStream,
    study_uid: str | None,
    root_url: str,
) -> stow.StoreAnswer:
    """STOW-RS into ``case`` (from :func:`storable_case`): each part through the ingest every
    upload takes; one audit record besides the ingest's own per file. A request that does not
    finish keeps nothing."""
    ingest = Ingest(
        session=session,
        vault=vault,
        settings=settings,
        ctx=caller.ctx,
        case=case,
        uploader_id=caller.principal.user_id,
        only_dicom=True,
        study_uid=study_uid,
    )
    refused: list[str] = []
    parts = 0
    try:
        for name, chunks in stow.dicom_parts(stream.parts(), refused):
            parts += 1
            ingest.add(filename=name, chunks=chunks, source="stow")
    except BaseException:  # stalled, cut short, disconnected: the sender never learns of them
        ingest.withdraw()
        raise
    if parts == 0 and not refused:
        raise InvalidInput(_("The request carried no instances."))
    result: UploadResult = ingest.result
    details = {"stored": len(result.accepted), "failed": len(result.rejected) + len(refused)}
    audit(session=session, caller=caller, case=case, action="dicomweb.store", details=details)
    return stow.answer(
        session=session,
        result=result,
        refused_parts=refused,
        root_url=root_url,
        study_uid=study_uid,
    )
