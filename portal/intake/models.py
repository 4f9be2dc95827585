"""Case files and the DICOM index (patient / study / series / instance) of a case."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, LargeBinary, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from portal.db import UTCDateTime, new_id, utcnow


class CaseFile(SQLModel, table=True):
    """An accepted file of a case. Rejected files leave no row (and no object)."""

    __tablename__ = "case_files"
    __table_args__ = (
        UniqueConstraint("case_id", "sop_instance_uid"),
        Index("ix_case_files_case_created", "case_id", "created_at", "id"),  # keyset pages
        Index("ix_case_files_upload_entry", "upload_id", "upload_entry", unique=True),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id", index=True)
    stored_object_id: uuid.UUID = Field(foreign_key="stored_objects.id")
    filename_sealed: bytes | None = Field(default=None, sa_type=LargeBinary)
    """The name the patient's computer gave it, sealed (display only; never a storage key)."""
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    size: int = Field(sa_type=BigInteger)
    sha256: str = Field(max_length=64)
    source: str = Field(max_length=16)
    """``upload`` (multipart), ``tus`` (resumable) or ``archive`` (a ZIP entry)."""
    uploaded_by: uuid.UUID = Field(foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sop_instance_uid: str | None = Field(default=None, max_length=64)
    page_count: int | None = None
    width: int | None = None
    height: int | None = None
    upload_id: uuid.UUID | None = None
    """The resumable upload it came from (no foreign key: the upload row goes, this stays)."""
    upload_entry: int | None = None
    """Which part of that upload: 0 the file itself, n the n-th entry of its ZIP. A completion
    job run again finds the parts it already stored by (``upload_id``, ``upload_entry``)."""


class DicomStudy(SQLModel, table=True):
    __tablename__ = "dicom_studies"
    __table_args__ = (UniqueConstraint("case_id", "study_instance_uid"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id", index=True)
    study_instance_uid: str = Field(max_length=64)
    study_date: str | None = Field(default=None, max_length=16)
    study_time: str | None = Field(default=None, max_length=16)
    timezone_offset: str | None = Field(default=None, max_length=16)
    study_id: str | None = Field(default=None, max_length=16)
    referring_physician_name: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=255)
    accession_number: str | None = Field(default=None, max_length=64)
    patient_name: str | None = Field(default=None, max_length=255)
    patient_id: str | None = Field(default=None, max_length=64)
    patient_birth_date: str | None = Field(default=None, max_length=16)
    patient_sex: str | None = Field(default=None, max_length=16)
    modalities: str = Field(default="", max_length=255)
    """Comma-separated modalities of its series, kept in step as series arrive."""


class DicomSeries(SQLModel, table=True):
    __tablename__ = "dicom_series"
    __table_args__ = (UniqueConstraint("study_id", "series_instance_uid"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    study_id: uuid.UUID = Field(foreign_key="dicom_studies.id", index=True)
    series_instance_uid: str = Field(max_length=64)
    modality: str | None = Field(default=None, max_length=16)
    body_part_examined: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=255)
    series_number: int | None = None
    series_date: str | None = Field(default=None, max_length=16)
    series_time: str | None = Field(default=None, max_length=16)


class DicomInstance(SQLModel, table=True):
    __tablename__ = "dicom_instances"
    __table_args__ = (
        # Frames per series summed from the index alone (no visit to a million rows).
        Index("ix_dicom_instances_series_frames", "series_id", "number_of_frames"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    series_id: uuid.UUID = Field(foreign_key="dicom_series.id", index=True)
    file_id: uuid.UUID = Field(foreign_key="case_files.id", unique=True)
    sop_class_uid: str = Field(max_length=64)
    sop_instance_uid: str = Field(max_length=64)
    instance_number: int | None = None
    transfer_syntax_uid: str = Field(max_length=64)
    rows: int | None = None
    columns: int | None = None
    bits_allocated: int | None = None
    samples_per_pixel: int | None = None
    pixel_data_offset: int | None = Field(default=None, sa_type=BigInteger)
    """Where the pixel data's value starts in the file: frames are read from there."""
    number_of_frames: int = 1
    frames_declared: bool = True
    """The file states Number of Frames; single-frame images often leave it out."""


class ArchiveReport(SQLModel, table=True):
    """What a ZIP (a hospital CD) contained and whether its DICOMDIR was complete."""

    __tablename__ = "archive_reports"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id", index=True)
    archive_name_sealed: bytes | None = Field(default=None, sa_type=LargeBinary)
    """The ZIP's file name, sealed with the case key."""
    upload_id: uuid.UUID | None = Field(default=None, unique=True, index=True)
    """The resumable upload it was imported from: a completion run again replaces it."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    dicomdir_present: bool
    referenced: int
    accepted: int
    rejected: int
    missing_sealed: bytes | None = Field(default=None, sa_type=LargeBinary)
    """JSON list of paths the DICOMDIR references that the archive lacks, sealed."""


class UploadStatus(enum.StrEnum):
    receiving = "receiving"
    """Bytes are still coming."""
    assembling = "assembling"
    """Every byte arrived; the completion job is ingesting them."""
    complete = "complete"
    failed = "failed"


# Responses ---------------------------------------------------------------------------------


class AcceptedFile(SQLModel):
    id: uuid.UUID
    filename: str
    kind: str
    duplicate: bool = False


class RejectedFile(SQLModel):
    filename: str
    reason: str
    code: str | None = Field(default=None, exclude=True)
    """Why, for machines (DICOMweb failure reasons); not part of the JSON answer."""


class ArchiveCompleteness(SQLModel):
    archive: str
    dicomdir_present: bool
    referenced: int
    missing: list[str]


class QueuedArchive(SQLModel):
    """A ZIP kept for a background import: its entries are accepted or refused there, and
    ``GET /api/uploads/{upload_id}`` shows how far it is and, at the end, its result."""

    archive: str
    upload_id: uuid.UUID
    progress: str
    """Where to follow it (``/api/uploads/{upload_id}``)."""


class UploadResult(SQLModel):
    accepted: list[AcceptedFile] = []
    rejected: list[RejectedFile] = []
    archives: list[ArchiveCompleteness] = []
    queued: list[QueuedArchive] = []
    """ZIPs sent with a multipart upload: imported after the answer (``QueuedArchive``)."""


class UploadProgress(SQLModel):
    """``GET /api/uploads/{id}``: how far a resumable upload and its completion job are."""

    id: uuid.UUID
    status: UploadStatus
    offset: int
    length: int
    entries_done: int
    """ZIP entries imported so far."""
    entries_total: int | None
    """Entries of the ZIP being imported, once read; null for any other file."""
    result: UploadResult | None
    """What was accepted and refused, once ``complete``."""
    failure: str | None
    """Why the upload could not be completed, once ``failed``."""


class CaseFilePublic(SQLModel):
    id: uuid.UUID
    filename: str
    kind: str
    size: int
    sha256: str
    status: str = "accepted"
    source: str
    created_at: datetime
    page_count: int | None
    width: int | None
    height: int | None


class TusUpload(SQLModel, table=True):
    """A resumable upload (tus 1.0.0) in progress; its bytes wait encrypted in storage."""

    __tablename__ = "tus_uploads"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_id: uuid.UUID = Field(foreign_key="cases.id", index=True)
    owner_id: uuid.UUID = Field(foreign_key="users.id")
    filename_sealed: bytes | None = Field(default=None, sa_type=LargeBinary)
    """The name the patient's computer gave the file, sealed with the case key."""
    status: str = Field(
        default=UploadStatus.receiving.value, sa_column=Column(String(16), nullable=False)
    )
    length: int = Field(sa_type=BigInteger)
    offset: int = Field(default=0, sa_type=BigInteger)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    result_sealed: bytes | None = Field(default=None, sa_type=LargeBinary)
    """The ingest outcome (JSON of ``UploadResult``, with file names), sealed."""
    entries_done: int = 0
    """ZIP entries the completion job has ingested so far."""
    entries_total: int | None = None
    """Entries of the ZIP being imported, once it has been read; None for any other file."""
    failure: str | None = Field(default=None, max_length=255)
    """Why the completion job gave up, for the person who uploaded (never patient data)."""


class TusChunk(SQLModel, table=True):
    """One received stretch of a resumable upload, stored as its own encrypted object."""

    __tablename__ = "tus_chunks"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    upload_id: uuid.UUID = Field(foreign_key="tus_uploads.id", index=True)
    stored_object_id: uuid.UUID = Field(foreign_key="stored_objects.id", unique=True)
    offset: int = Field(sa_type=BigInteger)
    length: int = Field(sa_type=BigInteger)
