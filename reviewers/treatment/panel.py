"""What the case page shows of treatment once the opinion is delivered: the options the opinion
links, the clinics offering them at indicative prices, the case's plan requests and whether
the patient may send one. Gathered from the services; no rule is decided here."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session

from portal.access import Principal
from portal.audit.service import AuditContext
from portal.cases.models import Case
from portal.db import utcnow
from portal.pagination import PageRequest
from reviewers.treatment import guide
from reviewers.treatment import requests as plan_requests
from reviewers.treatment.models import (
    OPEN_STATUSES,
    TRAVEL_HORIZON,
    ClinicPublic,
    OptionPublic,
    RequestStatus,
    TreatmentRequestPublic,
)

REQUESTS_SHOWN = 20


@dataclass
class TreatmentPanel:
    options: list[OptionPublic]
    clinics: list[ClinicPublic]
    requests: list[TreatmentRequestPublic] = field(default_factory=list)
    moves: dict[str, list[RequestStatus]] = field(default_factory=dict)
    """Per request id: the statuses the caller may move it to."""
    may_request: bool = False
    earliest: str = ""
    latest: str = ""
    """The travel dates the form accepts (ISO dates, for the date inputs' min and max)."""
    status_words: dict[str, str] = field(default_factory=plan_requests.status_words)
    move_words: dict[str, str] = field(default_factory=plan_requests.move_words)


def case_panel(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    case: Case,
    may: frozenset[str],
) -> TreatmentPanel | None:
    """The panel for this caller, or None when the delivered opinion links no options."""
    linked = plan_requests.linked_options(session=session, case=case)
    if not linked or "case.treatment.read" not in may:
        return None
    panel = TreatmentPanel(
        options=guide.describe_options(session=session, slugs=linked),
        clinics=guide.clinics_offering(session=session, slugs=linked),
    )
    panel.requests, _more = plan_requests.list_for_case(
        session=session,
        principal=principal,
        ctx=ctx,
        case_id=case.id,
        page=PageRequest(limit=REQUESTS_SHOWN),
    )
    panel.moves = {
        str(item.id): plan_requests.moves_for(principal, case, item.status)
        for item in panel.requests
    }
    waiting = any(item.status in OPEN_STATUSES for item in panel.requests)
    panel.may_request = (
        "case.treatment.request" in may and case.status in plan_requests.REQUESTABLE and not waiting
    )
    today = utcnow().date()
    panel.earliest, panel.latest = today.isoformat(), (today + TRAVEL_HORIZON).isoformat()
    return panel
