"""Imports every table model so ``SQLModel.metadata`` knows the whole schema (for Alembic)."""

from portal.accounts.models import AuthSession, LoginFailure, User
from portal.audit.models import AuditEvent, AuditHead
from portal.cases.models import Case, CaseConsent, CaseEvent
from portal.intake.models import (
    ArchiveReport,
    CaseFile,
    DicomInstance,
    DicomSeries,
    DicomStudy,
    TusChunk,
    TusUpload,
)
from portal.objects.models import CaseKey, StoredObject

__all__ = [
    "ArchiveReport",
    "AuditEvent",
    "AuditHead",
    "AuthSession",
    "Case",
    "CaseConsent",
    "CaseEvent",
    "CaseFile",
    "CaseKey",
    "DicomInstance",
    "DicomSeries",
    "DicomStudy",
    "LoginFailure",
    "StoredObject",
    "TusChunk",
    "TusUpload",
    "User",
]
