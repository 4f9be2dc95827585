"""Imports every table model so ``SQLModel.metadata`` knows the whole schema (for Alembic)."""

from portal.accounts.models import AuthSession, LoginFailure, User
from portal.audit.models import AuditEvent, AuditHead
from portal.cases.models import Case, CaseEvent
from portal.objects.models import CaseKey, StoredObject

__all__ = [
    "AuditEvent",
    "AuditHead",
    "AuthSession",
    "Case",
    "CaseEvent",
    "CaseKey",
    "LoginFailure",
    "StoredObject",
    "User",
]
