"""Imports every table model so ``SQLModel.metadata`` knows the whole schema (for Alembic)."""

from portal.accounts.models import (
    AuthSession,
    LoginFailure,
    PasswordResetRequest,
    PasswordResetToken,
    PendingSignIn,
    User,
)
from portal.audit.models import AuditEvent, AuditHead
from portal.breakglass.models import BreakGlassGrant
from portal.cases.models import Case, CaseConsent, CaseEvent
from portal.dicomweb.models import DicomwebToken
from portal.intake.models import (
    ArchiveReport,
    CaseFile,
    DicomInstance,
    DicomSeries,
    DicomStudy,
    TusChunk,
    TusUpload,
)
from portal.jobs.models import Job
from portal.notifications.models import OutboxMessage
from portal.objects.models import CaseKey, PendingText, StoredObject
from reviewers.models import (
    CaseAssignment,
    CaseQuestion,
    Opinion,
    OpinionAddendum,
    SpecialistProfile,
)
from reviewers.sharing.models import ShareLink
from reviewers.treatment.models import (
    Clinic,
    ClinicOffer,
    Condition,
    TreatmentOption,
    TreatmentRequest,
)

__all__ = [
    "ArchiveReport",
    "AuditEvent",
    "AuditHead",
    "AuthSession",
    "BreakGlassGrant",
    "Case",
    "CaseAssignment",
    "CaseConsent",
    "CaseEvent",
    "CaseFile",
    "CaseKey",
    "CaseQuestion",
    "Clinic",
    "ClinicOffer",
    "Condition",
    "DicomInstance",
    "DicomSeries",
    "DicomStudy",
    "DicomwebToken",
    "Job",
    "LoginFailure",
    "Opinion",
    "OpinionAddendum",
    "OutboxMessage",
    "PasswordResetRequest",
    "PasswordResetToken",
    "PendingSignIn",
    "PendingText",
    "ShareLink",
    "SpecialistProfile",
    "StoredObject",
    "TreatmentOption",
    "TreatmentRequest",
    "TusChunk",
    "TusUpload",
    "User",
]
