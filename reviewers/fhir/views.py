"""FHIR R4 routes: a case's delivered opinion as a document, the audit trail as AuditEvents.

Answers are ``application/fhir+json`` (``application/json`` when the client asks for that);
errors stay the portal's ``{"detail": ...}`` JSON like every other route (docs/fhir.md says
why).
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from fhir.resources.R4B.bundle import Bundle

from portal.deps import Caller, PageDep, SessionDep, SettingsDep
from portal.dicomweb.http import accepted
from portal.errors import NotAcceptable
from portal.i18n import _
from reviewers.fhir import service

FHIR_JSON = "application/fhir+json"
PLAIN_JSON = "application/json"

router = APIRouter(prefix="/api", tags=["fhir"])


def answer_type(request: Request) -> str:
    """``application/fhir+json`` unless the Accept header prefers ``application/json``; 406
    for a client that takes neither (FHIR XML is not offered)."""
    for media_type, _params in accepted(request):
        if media_type in {FHIR_JSON, "application/*", "*/*"}:
            return FHIR_JSON
        if media_type == PLAIN_JSON:
            return PLAIN_JSON
    raise NotAcceptable(
        _("This resource is given as %(media_type)s.", media_type=f"{FHIR_JSON}, {PLAIN_JSON}")
    )


def fhir_answer(bundle: Bundle, media_type: str) -> Response:
    return Response(bundle.model_dump_json(), media_type=media_type)


@router.get("/cases/{case_id}/fhir")
def case_document(
    case_id: uuid.UUID, request: Request, caller: Caller, session: SessionDep, settings: SettingsDep
) -> Response:
    """The delivered opinion as a FHIR R4 document Bundle (Composition first)."""
    media_type = answer_type(request)
    bundle = service.opinion_document(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        base_url=settings.base_url,
    )
    return fhir_answer(bundle, media_type)


@router.get("/audit/fhir")
def audit_trail(
    request: Request,
    caller: Caller,
    session: SessionDep,
    settings: SettingsDep,
    page: PageDep,
    case_id: uuid.UUID | None = None,
) -> Response:
    """The audit trail (optionally one case's) as FHIR AuditEvents in a searchset Bundle,
    newest first, paged like ``GET /api/audit`` (``limit``, ``cursor``, a ``next`` link)."""
    media_type = answer_type(request)
    bundle = service.audit_trail(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        page=page,
        base_url=settings.base_url,
    )
    return fhir_answer(bundle, media_type)
