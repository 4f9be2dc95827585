"""The coordinator's dashboard: counts, the triage queue and one page of the cases filtered,
gathered from the review services. No rules live here."""

from __future__ import annotations

from fastapi import Request, Response
from sqlmodel import Session

from portal.audit import service as audit_service
from portal.cases import service as cases_service
from portal.cases.models import CaseStatus
from portal.db import utcnow
from portal.deps import SignedInCaller
from portal.pagination import PageRequest
from portal.settings import Settings
from portal.web.templating import page_link, render
from reviewers import dashboard as dashboard_service
from reviewers import specialists
from reviewers.dashboard import CaseFilters
from reviewers.deadlines import DeadlineState
from reviewers.suggestions import top_suggestions


def dashboard(
    *,
    request: Request,
    caller: SignedInCaller,
    session: Session,
    settings: Settings,
    filters: CaseFilters,
    page: PageRequest,
) -> Response:
    """The coordinator's view: counts, the triage queue, and one page of the cases filtered.

    A bounded number of queries whatever the number of cases: counts are ``GROUP BY``, the
    page is a keyset ``LIMIT``, and its people, studies and matching are loaded per page.
    """
    principal, now = caller.principal, utcnow()
    team = specialists.team(session=session, principal=principal, now=now)
    counts = dashboard_service.counts_by_status(session=session, principal=principal)
    deadlines = dashboard_service.counts_by_deadline(session=session, principal=principal, now=now)
    cases, next_cursor = dashboard_service.page_of_cases(
        session=session, principal=principal, filters=filters, page=page, now=now
    )
    triage = dashboard_service.triage_queue(
        session=session, principal=principal, limit=dashboard_service.TRIAGE_SHOWN
    )
    patients = dashboard_service.patient_names(session=session, cases=cases)
    studies = dashboard_service.studies_of(
        session=session, case_ids=list({item.id for item in [*cases, *triage]})
    )
    ranked = dashboard_service.rank_all(
        session=session, cases=triage, studies=studies, pool=team.candidates, now=now
    )
    audit_service.record(
        session=session,
        ctx=caller.ctx,
        action="case.list",
        details={"count": len(cases), "status": filters.status},
    )
    session.commit()
    context = {
        "counts": [(value.value, counts.get(value.value, 0)) for value in CaseStatus],
        "deadline_counts": [(s.value, deadlines.get(s.value, 0)) for s in DeadlineState],
        "triage": cases_service.summarize_all(session=session, cases=triage),
        "triage_total": counts.get(CaseStatus.triage.value, 0),
        "suggested": top_suggestions(session=session, results=ranked, shown=3, names=team.names()),
        "identity_flags": dashboard_service.identity_flags(
            principal=principal, cases=cases, patients=patients, studies=studies
        ),
        "images": dashboard_service.image_summary(
            session=session, case_ids=[item.id for item in cases]
        ),
        "rows": cases_service.summarize_all(session=session, cases=cases),
        "owner": {
            item.id: patients[item.patient_id].full_name if item.patient_id in patients else ""
            for item in cases
        },
        "team": team.roster,
        "filters": filters,
        "statuses": [value.value for value in CaseStatus],
        "next_page": page_link(
            "/cases",
            {
                "status": filters.status,
                "deadline": filters.deadline,
                "specialist": filters.specialist,
                "q": filters.search,
                "limit": page.limit,
            },
            next_cursor,
        ),
    }
    return render(request, "cases/dashboard.html", context)
