"""Records (PDF reports, photos of paper reports) shown in the browser as images we render.

Read from the vault, checked against ``portal.access`` on every request, audited once per
sign-in session and file (``record.view``, remembered in the database for every replica), never
per page. Plaintext originals, page sizes and rendered pages are kept in this process's memory
only (bounded), never written to disk. Measuring and drawing happen in the render workers
(``portal.records.pool``): this process never parses a record itself.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlmodel import Session, SQLModel, select

from portal import access
from portal.access import Principal
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.cases.models import Case
from portal.errors import InvalidInput, NotFound, UnsupportedMediaType
from portal.i18n import N_, _
from portal.intake import service as intake_service
from portal.intake.models import CaseFile
from portal.objects import service as objects_service
from portal.objects.models import CaseKey, StoredObject
from portal.records import render
from portal.records.pool import RenderPool
from portal.records.render import PageNotFound, RecordTooLarge, Rendered, UnreadableRecord
from portal.viewer.cache import BoundedCache
from storage.vault import Vault

DEFAULT_WIDTH = 1200
MIN_WIDTH = 200
MAX_WIDTH = 2000
PDF = "pdf"
PHOTO_KINDS = frozenset({"jpeg", "png"})
WHOLE_RECORD_LIMIT = 32 * 1024 * 1024
"""Originals up to this size are kept a while after they were decrypted; larger ones (up to
the workers' ``max_bytes``) are decrypted for each render and dropped."""
ORIGINAL_CACHE_BYTES = 128 * 1024 * 1024
PAGE_CACHE_BYTES = 64 * 1024 * 1024
LAYOUT_CACHE_BYTES = 8 * 1024 * 1024


class NotARecord(UnsupportedMediaType):
    default_message = N_("This file cannot be shown here. Download it instead.")


class RecordPage(SQLModel):
    number: int
    width: int
    """Pixels of the page image at ``default_width`` (photos are never enlarged)."""
    height: int
    problem: str | None = None
    """Why this page cannot be shown (a page far longer than it is wide), if so."""


class RecordView(SQLModel):
    id: uuid.UUID
    case_id: uuid.UUID
    case_reference: str
    filename: str
    kind: str
    size: int
    page_count: int
    media_type: str
    """What the page images are: ``image/png``, or ``image/jpeg`` for JPEG photos."""
    default_width: int
    pages: list[RecordPage]
    problem: str | None = None
    """Why the record cannot be shown at all (damaged, password-protected), if so."""


@dataclass(frozen=True)
class _Layout:
    sizes: tuple[tuple[float, float], ...]
    """Per page: PDF points as displayed, or the photo's upright pixels."""
    problem: UnreadableRecord | None = None
    """Kept as the error, not its text: whoever reads it next may read another language."""


@dataclass
class RecordState:
    """What the records viewer keeps between requests, one per application."""

    originals: BoundedCache[uuid.UUID, bytes] = field(
        default_factory=lambda: BoundedCache(ORIGINAL_CACHE_BYTES)
    )
    layouts: BoundedCache[uuid.UUID, _Layout] = field(
        default_factory=lambda: BoundedCache(LAYOUT_CACHE_BYTES)
    )
    pages: BoundedCache[tuple[uuid.UUID, int, int], Rendered] = field(
        default_factory=lambda: BoundedCache(PAGE_CACHE_BYTES)
    )


def record_for_viewer(
    *,
    session: Session,
    vault: Vault,
    state: RecordState,
    renderer: RenderPool,
    principal: Principal,
    ctx: AuditContext,
    case_id: uuid.UUID,
    file_id: uuid.UUID,
) -> RecordView:
    """A record's name, kind, size, pages and their image sizes, or why it cannot be shown."""
    case, case_file = _record(session, principal, case_id, file_id)
    _audit_view(session, principal, ctx, case_file, via="record")
    layout = _layout(session, vault, state, renderer, case_file)
    return _view(
        case, case_file, layout, intake_service.file_name(session=session, case_file=case_file)
    )


def render_record_page(
    *,
    session: Session,
    vault: Vault,
    state: RecordState,
    renderer: RenderPool,
    principal: Principal,
    ctx: AuditContext,
    case_id: uuid.UUID,
    file_id: uuid.UUID,
    page: int,
    width: int,
) -> Rendered:
    """Page ``page`` (from 1) of a record as PNG (or JPEG for a JPEG photo); audited per file."""
    if not MIN_WIDTH <= width <= MAX_WIDTH:
        raise InvalidInput(
            _(
                "width must be between %(low)s and %(high)s pixels.",
                low=MIN_WIDTH,  # a query parameter's bounds: written as the client sends them
                high=MAX_WIDTH,
            )
        )
    _case, case_file = _record(session, principal, case_id, file_id)
    layout = _layout(session, vault, state, renderer, case_file)
    if layout.problem is not None:
        raise UnreadableRecord(layout.problem.reworded())
    count = len(layout.sizes)
    if not 1 <= page <= count:
        raise PageNotFound(
            render.pages_message(count) if case_file.kind == PDF else _("A photo has one page: 1.")
        )
    _audit_view(session, principal, ctx, case_file, via="page")
    key = (case_file.stored_object_id, page, width)
    rendered = state.pages.get(key)
    if rendered is None:
        data = _plaintext(session, vault, state, renderer, case_file)
        rendered = renderer.draw(kind=case_file.kind, data=data, page=page, width=width)
        state.pages.put(key, rendered, len(rendered.data))
    return rendered


def _record(
    session: Session, principal: Principal, case_id: uuid.UUID, file_id: uuid.UUID
) -> tuple[Case, CaseFile]:
    """The case and its file, if the caller may see them (else 404) and the file is a record."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.content.read"
    )
    case_file = session.exec(
        select(CaseFile).where(CaseFile.id == file_id).where(CaseFile.case_id == case.id)
    ).first()
    if case_file is None:
        raise NotFound(_("File not found."))
    if case_file.kind == "dicom":
        raise NotARecord(_("This is a DICOM image: open it in the image viewer."))
    if case_file.kind != PDF and case_file.kind not in PHOTO_KINDS:
        raise NotARecord()
    return case, case_file


def _audit_view(
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    case_file: CaseFile,
    *,
    via: str,
) -> None:
    """Record ``record.view`` the first time this sign-in session opens the file (on any
    replica), before any of it is shown; commits either way, so rendering holds no transaction."""
    audit_service.record_first_view(
        session=session,
        ctx=ctx,
        viewer_id=principal.session_id or principal.user_id,
        action="record.view",
        entity_type="file",
        entity_id=case_file.id,
        case_id=case_file.case_id,
        details={"via": via, "kind": case_file.kind},
    )
    session.commit()


def _layout(
    session: Session, vault: Vault, state: RecordState, renderer: RenderPool, case_file: CaseFile
) -> _Layout:
    """Page sizes from the file itself (PDFium's page count, the photo's EXIF orientation)."""
    object_id = case_file.stored_object_id
    layout = state.layouts.get(object_id)
    if layout is not None:
        return layout
    try:
        data = _plaintext(session, vault, state, renderer, case_file)
        layout = _Layout(tuple(renderer.measure(kind=case_file.kind, data=data)))
    except UnreadableRecord as exc:  # damaged, protected, too many pages, pixels or bytes
        layout = _Layout((), exc)
    state.layouts.put(object_id, layout, 256 + 32 * len(layout.sizes))
    return layout


def _view(case: Case, case_file: CaseFile, layout: _Layout, filename: str) -> RecordView:
    pages = []
    for number, (width, height) in enumerate(layout.sizes, start=1):
        if case_file.kind != PDF:
            shown = render.fitted_size(int(width), int(height), DEFAULT_WIDTH)
            pages.append(RecordPage(number=number, width=shown[0], height=shown[1]))
            continue
        try:
            _width_px, height_px = render.page_pixels(width, height, DEFAULT_WIDTH)
            pages.append(RecordPage(number=number, width=DEFAULT_WIDTH, height=height_px))
        except UnreadableRecord as exc:
            pages.append(RecordPage(number=number, width=0, height=0, problem=exc.message))
    return RecordView(
        id=case_file.id,
        case_id=case.id,
        case_reference=case.reference,
        filename=filename,
        kind=case_file.kind,
        size=case_file.size,
        page_count=len(layout.sizes),
        media_type=render.JPEG if case_file.kind == "jpeg" else render.PNG,
        default_width=DEFAULT_WIDTH,
        pages=pages,
        problem=layout.problem.reworded() if layout.problem else None,
    )


def _plaintext(
    session: Session, vault: Vault, state: RecordState, renderer: RenderPool, case_file: CaseFile
) -> bytes:
    """The original's plaintext (SHA-256 verified), kept a while when small.

    Raises
    ------
    RecordTooLarge
        The original is larger than a render worker is given.
    """
    object_id = case_file.stored_object_id
    cached = state.originals.get(object_id)
    if cached is not None:
        return cached
    row = session.get(StoredObject, object_id)
    if row is None or session.get(CaseKey, row.case_id) is None:
        raise NotFound(_("File not found."))
    if row.size > renderer.limits.max_bytes:
        raise RecordTooLarge(
            N_(
                "This file is larger than %(megabytes)s MB, too large to show here. Download "
                "the original to open it."
            ),
            megabytes=renderer.limits.max_bytes // (1024 * 1024),
        )
    data = b"".join(objects_service.open_object(session=session, vault=vault, row=row))
    if len(data) <= WHOLE_RECORD_LIMIT:
        state.originals.put(object_id, data, len(data))
    return data
