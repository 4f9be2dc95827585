"""The page before sign-in: how the service works, turnaround, price, specialists, data, FAQ.

Everything a visitor reads here comes from the settings (turnaround, prices, contact) and the
specialists who opted in to be listed; nothing about any case. It answers in the visitor's
language (cookie, then ``Accept-Language``) and is the front door at ``/`` for anyone not
signed in (a signed-in visitor goes on to their cases; ``/about`` shows it to them too).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from portal.deps import SessionDep, SettingsDep
from portal.settings import Settings
from portal.web.templating import render, see_other
from reviewers import specialists

router = APIRouter(include_in_schema=False)


def _context(session: SessionDep, settings: Settings) -> dict[str, Any]:
    return {
        "standard_days": settings.standard_due_business_days,
        "urgent_hours": settings.urgent_due_hours,
        "prices": [
            ("standard", settings.price_standard),
            ("urgent", settings.price_urgent),
        ],
        "currency": settings.price_currency,
        "prices_set_on": settings.prices_set_on,
        "contact_email": settings.contact_email,
        "contact_phone": settings.contact_phone,
        "follow_ups": settings.max_follow_up_questions,
        "listed": specialists.listed_publicly(session=session),
    }


@router.get("/")
def home(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The public page for visitors; the signed-in go on to their cases."""
    if request.cookies.get(settings.cookie_name):
        return see_other("/cases")
    return render(request, "public/home.html", _context(session, settings))


@router.get("/about")
def about(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """The same page for anyone, signed in or not."""
    return render(request, "public/home.html", _context(session, settings))
