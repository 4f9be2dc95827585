"""One ingest path for every way a file arrives: multipart, tus, or an entry of a ZIP.

Stream → encrypt → store, validating by content on the way (see ``capture``); then either the
rows that vouch for the object are committed, or the object is deleted. A rejected file leaves
no object and no row behind.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.cases.models import Case
from portal.db import begin_read_only
from portal.i18n import _
from portal.intake import archive_reports, indexing
from portal.intake.archive import ArchiveLimits, plan_zip
from portal.intake.capture import Capture, chunked
from portal.intake.dicom import inspect_dicom
from portal.intake.dicom_source import HeaderLimits
from portal.intake.errors import Rejected
from portal.intake.models import (
    AcceptedFile,
    ArchiveCompleteness,
    ArchiveReport,
    CaseFile,
    DicomInstance,
    QueuedArchive,
    RejectedFile,
    UploadResult,
)
from portal.intake.quota import QuotaLedger
from portal.intake.records import inspect_image, inspect_pdf, pdf_page_count
from portal.intake.sniff import FileKind
from portal.objects import service as objects_service
from portal.objects import texts
from portal.objects.models import StoredObject as StoredObjectRow
from portal.settings import Settings
from storage.reader import VaultFile
from storage.vault import StoredObject, Vault

PAGE_COUNT_LIMIT = 64 * 1024 * 1024  # count PDF pages only where it is cheap


def display_name(raw: str | None, *, keep_folders: bool = False) -> str:
    """A file name fit to show: no folders (unless asked), no control characters, ≤ 255."""
    name = unicodedata.normalize("NFC", raw or "").replace("\\", "/")
    if not keep_folders:
        name = name.rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if len(name) > 255:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 250 - len(ext)] + dot + ext) if dot and len(ext) <= 10 else name[:255]
    return name or "unnamed"


@dataclass
class Ingest:
    """Ingests the files of one upload request into one case."""

    session: Session
    vault: Vault
    settings: Settings
    ctx: AuditContext
    case: Case
    uploader_id: uuid.UUID
    result: UploadResult = field(default_factory=UploadResult)
    only_dicom: bool = False
    """Refuse anything but DICOM instances (DICOMweb STOW-RS)."""
    study_uid: str | None = None
    """Refuse instances of any other study (STOW-RS to ``/studies/{study}``)."""
    tus_upload_id: uuid.UUID | None = None
    """The resumable upload being completed: its own reservation does not count against it,
    and the parts it stores are keyed by it, so a completion run again skips them."""
    progress: Callable[[int, int], None] | None = None
    """Told (entries done, entries in all) as a ZIP's entries are imported."""
    stage_archive: Callable[[str, StoredObject], QueuedArchive] | None = None
    """Keep a ZIP for a background import instead of importing it in this request (multipart
    uploads: a CD's thousands of entries would outlast the request and any proxy's timeout)."""
    _reports: list[uuid.UUID] = field(default_factory=list)
    _key_and_quota: tuple[bytes, QuotaLedger] | None = None
    """Read at the request's first file, then kept by the request (``portal.intake.quota``)."""

    def withdraw(self) -> None:
        """Remove every file this ingest stored: its request did not finish.

        Its sender never saw an answer, so it cannot know which files arrived; a request
        that breaks off therefore keeps nothing (rows, index entries nor objects).
        """
        self.session.rollback()
        file_ids = [f.id for f in self.result.accepted if not f.duplicate]
        if not file_ids and not self._reports:
            return
        files = self.session.exec(select(CaseFile).where(col(CaseFile.id).in_(file_ids))).all()
        object_ids = [f.stored_object_id for f in files]
        objects = self.session.exec(
            select(StoredObjectRow).where(col(StoredObjectRow.id).in_(object_ids))
        ).all()
        series_ids = set(
            self.session.exec(
                select(DicomInstance.series_id).where(col(DicomInstance.file_id).in_(file_ids))
            ).all()
        )
        self.session.exec(delete(DicomInstance).where(col(DicomInstance.file_id).in_(file_ids)))
        self.session.exec(delete(CaseFile).where(col(CaseFile.id).in_(file_ids)))
        self.session.exec(delete(StoredObjectRow).where(col(StoredObjectRow.id).in_(object_ids)))
        self.session.exec(delete(ArchiveReport).where(col(ArchiveReport.id).in_(self._reports)))
        indexing.drop_empty(session=self.session, case_id=self.case.id, series_ids=series_ids)
        audit_service.record(
            session=self.session,
            ctx=self.ctx,
            action="upload.withdraw",
            outcome="rejected",
            case_id=self.case.id,
            details={"files": len(file_ids)},
        )
        self.session.commit()
        for row in objects:
            self.vault.delete(row.object_key)
        self.result = UploadResult()
        self._reports.clear()

    def add(self, *, filename: str, chunks: Iterable[bytes], source: str) -> None:
        """Ingest one uploaded file (a ZIP expands into its entries)."""
        self._one(
            filename=display_name(filename), chunks=chunks, source=source, in_archive=False, entry=0
        )

    # -- one file ------------------------------------------------------------------------

    def _one(
        self, *, filename: str, chunks: Iterable[bytes], source: str, in_archive: bool, entry: int
    ) -> None:
        if self._stored_before(filename, entry):
            return
        source_iter = iter(chunks)
        wrapped, quota_left = self._case_key_and_quota()
        capture = Capture(
            source_iter,
            head_limit=self.settings.intake_head_bytes,
            max_bytes=self.settings.max_file_bytes,
            quota_left=quota_left,
        )
        try:
            stored = self.vault.put(case_id=str(self.case.id), wrapped_key=wrapped, source=capture)
        except Rejected as rejected:
            for _chunk in source_iter:  # drain: the next multipart part starts after this one
                pass
            self._reject(filename, rejected, source)
            return
        try:
            if self.only_dicom and capture.kind is not FileKind.dicom:
                raise Rejected("not_dicom", _("This is not a DICOM instance."))
            if capture.kind is FileKind.zip:
                if in_archive:
                    raise Rejected(
                        "nested_archive",
                        _("Archives nested more than one level deep are not accepted."),
                    )
                if self.stage_archive is not None:
                    self.result.queued.append(self.stage_archive(filename, stored))
                else:
                    self._archive(filename, stored, wrapped)
                return
            self._accept(filename, stored, capture, source, wrapped, entry)
        except Rejected as rejected:
            self.vault.delete(stored.object_key)
            self._reject(filename, rejected, source)
        except BaseException:
            self.vault.delete(stored.object_key)
            raise

    def _accept(
        self,
        filename: str,
        stored: StoredObject,
        capture: Capture,
        source: str,
        wrapped: bytes,
        entry: int,
    ) -> None:
        head, kind = bytes(capture.head), capture.kind
        assert kind is not None
        header = known = None
        page_count = width = height = None
        if kind is FileKind.dicom:
            header = inspect_dicom(
                head,
                tail=capture.tail,
                total_size=capture.total,
                open_body=lambda: VaultFile(
                    self.vault,
                    case_id=str(self.case.id),
                    wrapped_key=wrapped,
                    object_key=stored.object_key,
                ),
                limits=HeaderLimits(
                    max_bytes=self.settings.intake_dicom_header_max_bytes,
                    max_elements=self.settings.intake_dicom_header_max_elements,
                    max_depth=self.settings.intake_dicom_header_max_depth,
                ),
            )
            if self.study_uid is not None and header.study_instance_uid != self.study_uid:
                raise Rejected(
                    "study_mismatch",
                    _("This instance belongs to another study than the one it was sent to."),
                )
            begin_read_only(self.session)
            known = indexing.lookup(session=self.session, case_id=self.case.id, header=header)
            self.session.commit()
            if known.file is not None:
                self._duplicate(filename, stored, known.file)
                return
        elif kind is FileKind.pdf:
            inspect_pdf(head, tail=capture.tail, total_size=capture.total)
            page_count = self._page_count(stored, wrapped)
        else:
            width, height = inspect_image(
                head,
                kind=kind,
                tail=capture.tail,
                total_size=capture.total,
                max_pixels=self.settings.record_max_pixels,
            )
        # The write transaction holds the database's write lock (SQLite: the only one), so it
        # does no reads it can avoid: what to link to was looked up above.
        row = objects_service.record(session=self.session, case_id=self.case.id, stored=stored)
        case_file = CaseFile(
            case_id=self.case.id,
            stored_object_id=row.id,
            kind=kind.value,
            size=stored.size,
            sha256=stored.sha256,
            source=source,
            uploaded_by=self.uploader_id,
            sop_instance_uid=header.sop_instance_uid if header else None,
            page_count=page_count,
            width=width,
            height=height,
            upload_id=self.tus_upload_id,
            upload_entry=entry if self.tus_upload_id is not None else None,
        )
        texts.for_case(session=self.session, case_id=self.case.id).seal(
            case_file, "filename", filename
        )
        self.session.add(case_file)
        try:
            self.session.flush()  # before the instance that refers to it
            if header is not None:
                indexing.index_instance(
                    session=self.session,
                    case_id=self.case.id,
                    file_id=case_file.id,
                    header=header,
                    known=known,
                )
            audit_service.record(
                session=self.session,
                ctx=self.ctx,
                action="file.upload",
                entity_type="file",
                entity_id=case_file.id,
                case_id=self.case.id,
                details={"kind": kind.value, "size": stored.size, "source": source},
            )
            self.session.commit()
        except IntegrityError:
            self.session.rollback()
            if header is None:
                raise
            existing = indexing.file_with_instance(  # the same instance, uploaded meanwhile
                session=self.session, case_id=self.case.id, sop_instance_uid=header.sop_instance_uid
            )
            self.session.commit()
            if existing is None:
                raise
            self._duplicate(filename, stored, existing)
            return
        if self._key_and_quota is not None:
            self._key_and_quota[1].spend(stored.size)
        self.result.accepted.append(
            AcceptedFile(id=case_file.id, filename=filename, kind=kind.value)
        )

    def _stored_before(self, filename: str, entry: int) -> bool:
        """Whether an earlier run of this upload's completion stored this part (then it is
        reported as accepted again, and not read)."""
        if self.tus_upload_id is None:
            return False
        begin_read_only(self.session)
        earlier = self.session.exec(
            select(CaseFile.id, CaseFile.kind)
            .where(CaseFile.upload_id == self.tus_upload_id)
            .where(CaseFile.upload_entry == entry)
        ).first()
        self.session.commit()
        if earlier is None:
            return False
        self.result.accepted.append(AcceptedFile(id=earlier[0], filename=filename, kind=earlier[1]))
        return True

    def _duplicate(self, filename: str, stored: StoredObject, existing: CaseFile) -> None:
        """The case has this DICOM instance already: keep that file, drop the new object."""
        self.vault.delete(stored.object_key)
        self.result.accepted.append(
            AcceptedFile(id=existing.id, filename=filename, kind=existing.kind, duplicate=True)
        )

    def _page_count(self, stored: StoredObject, wrapped: bytes) -> int | None:
        if stored.size > PAGE_COUNT_LIMIT:
            return None
        with VaultFile(
            self.vault,
            case_id=str(self.case.id),
            wrapped_key=wrapped,
            object_key=stored.object_key,
        ) as reader:
            return pdf_page_count(reader)

    def _reject(self, filename: str, rejected: Rejected, source: str) -> None:
        self.session.rollback()
        audit_service.record(
            session=self.session,
            ctx=self.ctx,
            action="file.reject",
            outcome="rejected",
            case_id=self.case.id,
            details={"code": rejected.code, "source": source},
        )
        self.session.commit()
        self.result.rejected.append(
            RejectedFile(filename=filename, reason=rejected.reason, code=rejected.code)
        )

    # -- archives ------------------------------------------------------------------------

    def _archive(self, name: str, stored: StoredObject, wrapped: bytes) -> None:
        """Ingest every entry of a stored ZIP, then delete the ZIP itself."""
        try:
            with VaultFile(
                self.vault,
                case_id=str(self.case.id),
                wrapped_key=wrapped,
                object_key=stored.object_key,
            ) as reader:
                plan = plan_zip(reader, self._limits())
                for entry_rejection in plan.rejected:
                    self._reject(f"{name}/{entry_rejection.name}", entry_rejection.error, "archive")
                accepted_before = len(self.result.accepted)
                rejected_before = len(self.result.rejected)
                if self.progress is not None:
                    self.progress(0, len(plan.entries))
                for number, entry in enumerate(plan.entries, start=1):
                    entry_name = display_name(f"{name}/{entry.name}", keep_folders=True)
                    with entry.open() as stream:
                        self._one(
                            filename=entry_name,
                            chunks=chunked(stream),
                            source="archive",
                            in_archive=True,
                            entry=number,
                        )
                    if self.progress is not None:
                        self.progress(number, len(plan.entries))
        finally:
            self.vault.delete(stored.object_key)
        report = archive_reports.record(
            session=self.session,
            case_id=self.case.id,
            upload_id=self.tus_upload_id,
            name=name,
            plan=plan,
            accepted=len(self.result.accepted) - accepted_before,
            rejected=len(self.result.rejected) - rejected_before + len(plan.rejected),
        )
        self._reports.append(report.id)
        audit_service.record(
            session=self.session,
            ctx=self.ctx,
            action="archive.import",
            entity_type="archive",
            entity_id=report.id,
            case_id=self.case.id,
            details={
                "dicomdir": plan.dicomdir_present,
                "referenced": plan.referenced,
                "missing": len(plan.missing),
                "accepted": report.accepted,
                "rejected": report.rejected,
            },
        )
        self.session.commit()
        self.result.archives.append(
            ArchiveCompleteness(
                archive=name,
                dicomdir_present=plan.dicomdir_present,
                referenced=plan.referenced,
                missing=plan.missing,
            )
        )

    def _limits(self) -> ArchiveLimits:
        return ArchiveLimits(
            max_entries=self.settings.archive_max_entries,
            max_total_uncompressed=self.settings.archive_max_total_bytes,
            max_entry_size=self.settings.max_file_bytes,
            max_ratio=self.settings.archive_max_ratio,
        )

    # -- bookkeeping ---------------------------------------------------------------------

    def _case_key_and_quota(self) -> tuple[bytes, int]:
        """The case's wrapped data key and the bytes its quota has left.

        Read once per request, in a read-only transaction committed before any bytes stream:
        uploads to one case neither wait for each other's writes here nor hold them up. Only
        the first upload of a case writes (it creates the data key). Each file this request
        stores is then taken off the ledger (``_accept``), with no query per file.
        """
        if self._key_and_quota is not None:
            return self._key_and_quota[0], self._key_and_quota[1].left
        if self.session.in_transaction():
            self.session.commit()
        begin_read_only(self.session)
        found = objects_service.find_case_key(session=self.session, case_id=self.case.id)
        ledger = QuotaLedger.read(
            session=self.session,
            case_id=self.case.id,
            quota=self.settings.case_quota_bytes,
            excluding_upload=self.tus_upload_id,
        )
        self.session.commit()
        wrapped = found
        if wrapped is None:
            wrapped = objects_service.case_key(
                session=self.session, vault=self.vault, case_id=self.case.id
            )
            self.session.commit()
        self._key_and_quota = (wrapped, ledger)
        return wrapped, ledger.left
