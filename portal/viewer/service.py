"""The viewer's series, frames and thumbnails, read from the vault and audited per series."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass

from pydicom.uid import UID
from sqlmodel import Session, col, select

from portal import access
from portal.access import Principal
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.errors import NotFound
from portal.i18n import _, ngettext
from portal.intake.models import CaseFile, DicomInstance, DicomSeries, DicomStudy
from portal.objects import service as objects_service
from portal.objects.models import CaseKey, StoredObject
from portal.viewer import render
from portal.viewer.cache import CachedImage, ViewerState
from portal.viewer.render import Frame, FrameNotFound, UnsupportedImage
from portal.viewer.schemas import SeriesView
from portal.viewer.windows import IMAGE_DEFAULT, WindowRequest
from storage.reader import buffered
from storage.vault import Vault

WHOLE_OBJECT_LIMIT = 64 * 1024 * 1024
"""Instances up to this size are decrypted whole and cached parsed; larger ones (long
multi-frame) keep only their header cached and read each frame's bytes from storage."""
FRAME_READ_WINDOW = 1024 * 1024
THUMBNAIL_SIDE = 128


@dataclass(frozen=True)
class _Located:
    instance: DicomInstance
    stored_object_id: uuid.UUID


def series_for_viewer(
    *,
    session: Session,
    vault: Vault,
    state: ViewerState,
    principal: Principal,
    ctx: AuditContext,
    case_id: uuid.UUID,
    series_id: uuid.UUID,
) -> SeriesView:
    """The series' instances in scrolling order, its default window and presets; audited."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.images.read"
    )
    series = _series(session, case.id, series_id)
    instances = _ordered_instances(session, series.id)
    _audit_view(session, principal, ctx, case_id=case.id, series_id=series.id, via="series")
    frame, problem = None, None
    if instances:
        middle = instances[len(instances) // 2]
        try:
            frame = _decode(session, vault, state, middle, middle.instance.number_of_frames // 2)
        except UnsupportedImage as exc:
            problem = exc.message
    return SeriesView.build(series, [row.instance for row in instances], frame, problem)


def render_frame(
    *,
    session: Session,
    vault: Vault,
    state: ViewerState,
    principal: Principal,
    ctx: AuditContext,
    case_id: uuid.UUID,
    instance_id: uuid.UUID,
    frame: int,
    window: WindowRequest,
) -> bytes:
    """Frame ``frame`` (numbered from 1, like DICOM) of an instance as PNG; audited per series."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.images.read"
    )
    located = _instance(session, case.id, instance_id)
    count = located.instance.number_of_frames
    if not 1 <= frame <= count:
        raise FrameNotFound(
            ngettext(
                "This image has %(num)s frame, numbered 1 to %(num)s.",
                "This image has %(num)s frames, numbered 1 to %(num)s.",
                count,
            )
        )
    series_id = located.instance.series_id
    _audit_view(session, principal, ctx, case_id=case.id, series_id=series_id, via="frame")
    return render.to_png(_decode(session, vault, state, located, frame - 1), window=window)


def thumbnail(
    *,
    session: Session,
    vault: Vault,
    state: ViewerState,
    principal: Principal,
    ctx: AuditContext,
    case_id: uuid.UUID,
    series_id: uuid.UUID,
) -> bytes:
    """The middle frame of the middle instance, default window, at most 128 px; audited."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.images.read"
    )
    series = _series(session, case.id, series_id)
    instances = _ordered_instances(session, series.id)
    if not instances:
        raise NotFound(_("This series has no images."))
    _audit_view(session, principal, ctx, case_id=case.id, series_id=series.id, via="thumbnail")
    middle = instances[len(instances) // 2]
    decoded = _decode(session, vault, state, middle, middle.instance.number_of_frames // 2)
    return render.to_png(decoded, window=IMAGE_DEFAULT, max_side=THUMBNAIL_SIDE)


def instance_png(
    *,
    session: Session,
    vault: Vault,
    state: ViewerState,
    instance: DicomInstance,
    stored_object_id: uuid.UUID,
    index: int,
    window: WindowRequest = IMAGE_DEFAULT,
    max_side: int | None = None,
) -> bytes:
    """Frame ``index`` (0-based) of an instance the caller already may see, as PNG.

    For other interfaces (DICOMweb ``/rendered``) that check access and audit themselves.
    """
    count = instance.number_of_frames
    if not 0 <= index < count:
        raise FrameNotFound(
            ngettext(
                "This image has %(num)s frame, numbered 1 to %(num)s.",
                "This image has %(num)s frames, numbered 1 to %(num)s.",
                count,
            )
        )
    decoded = _decode(session, vault, state, _Located(instance, stored_object_id), index)
    return render.to_png(decoded, window=window, max_side=max_side)


def _series(session: Session, case_id: uuid.UUID, series_id: uuid.UUID) -> DicomSeries:
    series = session.exec(
        select(DicomSeries)
        .join(DicomStudy, col(DicomStudy.id) == col(DicomSeries.study_id))
        .where(DicomSeries.id == series_id)
        .where(DicomStudy.case_id == case_id)
    ).first()
    if series is None:
        raise NotFound(_("Series not found."))
    return series


def _ordered_instances(session: Session, series_id: uuid.UUID) -> list[_Located]:
    """By Instance Number (missing last), then SOP Instance UID compared component-wise.

    Ordering by position along the slice normal would need ImagePositionPatient in the index.
    """
    rows = session.exec(
        select(DicomInstance, CaseFile.stored_object_id)
        .join(CaseFile, col(CaseFile.id) == col(DicomInstance.file_id))
        .where(DicomInstance.series_id == series_id)
    ).all()
    located = [_Located(instance, object_id) for instance, object_id in rows]
    return sorted(located, key=lambda row: _scroll_key(row.instance))


def _scroll_key(instance: DicomInstance) -> tuple[bool, int, tuple[int, ...]]:
    number = instance.instance_number
    uid = tuple(
        int(part) if part.isdigit() else -1 for part in instance.sop_instance_uid.split(".")
    )
    return number is None, number or 0, uid


def _instance(session: Session, case_id: uuid.UUID, instance_id: uuid.UUID) -> _Located:
    found = session.exec(
        select(DicomInstance, CaseFile.stored_object_id)
        .join(CaseFile, col(CaseFile.id) == col(DicomInstance.file_id))
        .where(DicomInstance.id == instance_id)
        .where(CaseFile.case_id == case_id)
    ).first()
    if found is None:
        raise NotFound(_("Image not found."))
    return _Located(found[0], found[1])


def _audit_view(
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    *,
    case_id: uuid.UUID,
    series_id: uuid.UUID,
    via: str,
) -> None:
    """Record ``viewer.series`` the first time this sign-in session views the series (on any
    replica); commits either way, so the rendering that follows holds no transaction."""
    audit_service.record_first_view(
        session=session,
        ctx=ctx,
        viewer_id=principal.session_id or principal.user_id,
        action="viewer.series",
        entity_type="series",
        entity_id=series_id,
        case_id=case_id,
        details={"via": via},
    )
    session.commit()


def _decode(
    session: Session, vault: Vault, state: ViewerState, located: _Located, index: int
) -> Frame:
    """Frame ``index`` (0-based); decoded frames of compressed images are kept a while."""
    object_id = located.stored_object_id
    frame = state.frames.get((object_id, index))
    if frame is not None:
        return frame
    cached = _cached_image(session, vault, state, object_id)
    if cached.whole:
        frame = render.decode_frame(cached.dataset, index=index)
    else:
        with _stored_file(session, vault, object_id) as source:
            frame = render.decode_frame(cached.dataset, index=index, source=source)
    if UID(located.instance.transfer_syntax_uid).is_compressed:
        state.frames.put((object_id, index), frame, frame.pixels.nbytes)
    return frame


def _cached_image(
    session: Session, vault: Vault, state: ViewerState, object_id: uuid.UUID
) -> CachedImage:
    cached = state.datasets.get(object_id)
    if cached is not None:
        return cached
    row = session.get(StoredObject, object_id)
    if row is None:
        raise NotFound(_("Image not found."))
    if row.size <= WHOLE_OBJECT_LIMIT:
        plaintext = io.BytesIO()
        for chunk in objects_service.open_object(session=session, vault=vault, row=row):
            plaintext.write(chunk)  # the SHA-256 is verified when the last chunk is read
        plaintext.seek(0)
        cached = CachedImage(render.read_dataset(plaintext), row.size, whole=True)
    else:
        with _stored_file(session, vault, object_id) as source:
            header = render.read_dataset(source, header_only=True)
            cached = CachedImage(header, source.tell(), whole=False)
    state.datasets.put(object_id, cached, cached.size)
    return cached


def _stored_file(session: Session, vault: Vault, object_id: uuid.UUID) -> io.BufferedReader:
    """A seekable plaintext view of a stored object that decrypts only what is read."""
    row = session.get(StoredObject, object_id)
    key = session.get(CaseKey, row.case_id) if row is not None else None
    if row is None or key is None:
        raise NotFound(_("Image not found."))
    return buffered(
        vault,
        case_id=str(row.case_id),
        wrapped_key=key.wrapped_key,
        object_key=row.object_key,
        window=FRAME_READ_WINDOW,
    )
