"""The audit trail as FHIR R4 ``AuditEvent`` resources, one per row of ``audit_events``, in a
``searchset`` bundle paged like ``GET /api/audit`` (docs/fhir.md, "AuditEvent").

An audit row holds identifiers and outcomes only, never patient data; so does its AuditEvent:
people and cases are referenced by their ids, not named.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from urllib.parse import urlencode

from fhir.resources.R4B.auditevent import (
    AuditEvent,
    AuditEventAgent,
    AuditEventAgentNetwork,
    AuditEventEntity,
    AuditEventEntityDetail,
    AuditEventSource,
)
from fhir.resources.R4B.bundle import Bundle, BundleEntry, BundleEntrySearch, BundleLink
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.reference import Reference

from portal.audit.models import AuditEvent as AuditRow
from portal.db import utcnow
from portal.pagination import PageRequest
from reviewers.fhir import codes
from reviewers.fhir.codes import local_system
from reviewers.fhir.elements import Code, coding, uuid_identifier

PORTAL = "Second Opinion Portal"

# Event types (DICOM PS3.15 audit event IDs, the codes FHIR's AuditEvent.type value set
# takes), chosen by the portal action. The first rule that matches wins.
AUTHENTICATION = (codes.DICOM, "110114", "User Authentication")
AUDIT_LOG_USED = (codes.DICOM, "110101", "Audit Log Used")
INSTANCES_ACCESSED = (codes.DICOM, "110103", "DICOM Instances Accessed")
IMPORT = (codes.DICOM, "110107", "Import")
EXPORT = (codes.DICOM, "110106", "Export")
QUERY = (codes.DICOM, "110112", "Query")
SECURITY_ALERT = (codes.DICOM, "110113", "Security Alert")
PATIENT_RECORD = (codes.DICOM, "110110", "Patient Record")
APPLICATION_ACTIVITY = (codes.DICOM, "110100", "Application Activity")

_TYPES: tuple[tuple[tuple[str, ...], Code], ...] = (
    (("auth.",), AUTHENTICATION),
    (("audit.",), AUDIT_LOG_USED),
    (
        ("dicomweb.retrieve", "dicomweb.metadata", "dicomweb.rendered", "viewer.series"),
        INSTANCES_ACCESSED,
    ),
    (("dicomweb.store", "file.upload", "archive.import"), IMPORT),
    (("file.download", "opinion.download", "fhir."), EXPORT),
    (("dicomweb.search", "case.list", "file.list", "study.list", "case.suggestions"), QUERY),
    (("case.break_glass", "account.", "dicomweb.token."), SECURITY_ALERT),
    (
        ("keys.", "backup.", "pg_", "specialist.", "treatment.guide", "treatment.option"),
        APPLICATION_ACTIVITY,
    ),
    (("treatment.clinic", "treatment.offer", "treatment.condition"), APPLICATION_ACTIVITY),
)
_PATIENT_RECORD_PREFIXES = (
    "case.",
    "opinion.",
    "question",
    "file.",
    "upload.",
    "record.",
    "dicomweb.",
    "viewer.",
    "treatment.request",
)
"""Other actions on a case's content are 110110 Patient Record; the rest 110100."""

# FHIR audit-event-action: Create, Read, Update, Delete, Execute; by the action's last word.
_ACTIONS: dict[str, frozenset[str]] = {
    "C": frozenset(
        {"create", "register", "upload", "store", "import", "addendum", "issue", "request"}
    ),
    "R": frozenset(
        {
            "read",
            "list",
            "download",
            "search",
            "retrieve",
            "metadata",
            "rendered",
            "view",
            "series",
            "suggestions",
            "assignments",
            "check",
            "document",
        }
    ),
    "U": frozenset({"save", "update", "consent", "assign", "status", "sign", "submit", "seed"}),
    "D": frozenset(
        {"erase", "terminate", "revoke", "remove", "withdraw", "key_destroyed", "retire", "reject"}
    ),
}

# FHIR audit-event-outcome: 0 success, 4 minor failure (a refused request), 8 serious failure.
_OUTCOMES = {"success": "0", "failure": "4", "rejected": "4", "throttled": "4", "denied": "4"}


def event_type(action: str) -> Code:
    for prefixes, code in _TYPES:
        if action.startswith(prefixes):
            return code
    return PATIENT_RECORD if action.startswith(_PATIENT_RECORD_PREFIXES) else APPLICATION_ACTIVITY


def event_action(action: str) -> str:
    last = action.rsplit(".", 1)[-1]
    return next((code for code, words in _ACTIONS.items() if last in words), "E")


def audit_event(row: AuditRow, *, base_url: str) -> AuditEvent:
    """One audit row as an AuditEvent (its id is the row's append number)."""
    return AuditEvent(
        id=str(row.id),
        extension=_chain(row, base_url) or None,
        type=coding(event_type(row.action)),
        subtype=[Coding(system=local_system(base_url, "CodeSystem/audit-action"), code=row.action)],
        action=event_action(row.action),
        recorded=row.at,
        outcome=_OUTCOMES.get(row.outcome, "8"),
        outcomeDesc=None if row.outcome == "success" else row.outcome,
        agent=[_agent(row, base_url)],
        source=AuditEventSource(
            observer=Reference(display=PORTAL),
            type=[Coding(system=codes.AUDIT_SOURCE_TYPE, code="4", display="Application Server")],
        ),
        entity=_entities(row) or None,
    )


def _chain(row: AuditRow, base_url: str) -> list[Extension]:
    """Where the row stands in the hash chain (once sealed) and the request it came from."""
    found = []
    if row.seq is not None and row.hash is not None:
        found.append(
            Extension(
                url=local_system(base_url, "StructureDefinition/audit-chain"),
                extension=[
                    Extension(url="seq", valueString=str(row.seq)),
                    Extension(url="hash", valueString=row.hash),
                ],
            )
        )
    if row.request_id:
        found.append(
            Extension(
                url=local_system(base_url, "StructureDefinition/request-id"),
                valueString=row.request_id,
            )
        )
    return found


def _agent(row: AuditRow, base_url: str) -> AuditEventAgent:
    """Who acted: an account (by id, with its role) or the portal itself."""
    person = row.actor_id is not None
    kind = (
        (codes.AUDIT_AGENT_TYPE, "humanuser", "human user")
        if person
        else (codes.DICOM, "110150", "Application")
    )
    role = row.actor_role
    return AuditEventAgent(
        type=CodeableConcept(coding=[coding(kind)]),
        role=[
            CodeableConcept(
                coding=[Coding(system=local_system(base_url, "CodeSystem/role"), code=role)],
                text=role,
            )
        ]
        if role
        else None,
        who=Reference(identifier=uuid_identifier(row.actor_id))
        if row.actor_id is not None
        else Reference(display=PORTAL),
        requestor=person,
        network=AuditEventAgentNetwork(address=row.client_ip, type="2") if row.client_ip else None,
    )


def _entities(row: AuditRow) -> list[AuditEventEntity]:
    """The case (by id) and the thing acted on (by its kind and id), the row's details on the
    latter; one entity when the thing acted on is the case itself."""
    details = [
        AuditEventEntityDetail(
            type=key, valueString=value if isinstance(value, str) else json.dumps(value)
        )
        for key, value in sorted(json.loads(row.details or "{}").items())
    ]
    system_object = Coding(system=codes.AUDIT_ENTITY_TYPE, code="2", display="System Object")
    about_case = row.case_id is not None and row.entity_id in (None, str(row.case_id))
    found = []
    if row.case_id is not None:
        found.append(
            AuditEventEntity(
                what=Reference(identifier=uuid_identifier(row.case_id)),
                type=system_object,
                role=Coding(system=codes.AUDIT_OBJECT_ROLE, code="4", display="Domain Resource"),
                description="case",
                detail=(details or None) if about_case else None,
            )
        )
    if not about_case and (row.entity_id is not None or details):
        found.append(
            AuditEventEntity(
                what=Reference(identifier=Identifier(value=row.entity_id))
                if row.entity_id is not None
                else None,
                type=system_object,
                description=row.entity_type,
                detail=details or None,
            )
        )
    return found


def _page_url(base_url: str, case_id: uuid.UUID | None, limit: int, cursor: str | None) -> str:
    query = {"case_id": str(case_id) if case_id else None, "limit": str(limit), "cursor": cursor}
    params = urlencode({key: value for key, value in query.items() if value is not None})
    return f"{base_url.rstrip('/')}/api/audit/fhir?{params}"


def search_bundle(
    rows: Sequence[AuditRow],
    *,
    base_url: str,
    case_id: uuid.UUID | None,
    page: PageRequest,
    next_cursor: str | None,
) -> Bundle:
    """A ``searchset`` of one page, newest first, with ``self`` and (when more follow) ``next``
    links that carry the same ``limit`` and the JSON list's opaque cursor."""
    links = [BundleLink(relation="self", url=_page_url(base_url, case_id, page.limit, page.cursor))]
    if next_cursor is not None:
        links.append(
            BundleLink(relation="next", url=_page_url(base_url, case_id, page.limit, next_cursor))
        )
    return Bundle(
        type="searchset",
        timestamp=utcnow(),
        link=links,
        entry=[
            BundleEntry(
                resource=audit_event(row, base_url=base_url),
                search=BundleEntrySearch(mode="match"),
            )
            for row in rows
        ]
        or None,
    )
