"""Timeline notes: what a step was about, sealed like every other free text of the case."""

from __future__ import annotations

from sqlmodel import Session

from portal.cases.models import CaseEvent
from portal.objects import texts


def seal_note(*, session: Session, event: CaseEvent, note: str | None) -> None:
    """Give ``event`` its row id, then store ``note`` sealed (its binding names the row)."""
    if note is None:
        return
    session.add(event)
    session.flush()
    texts.for_case(session=session, case_id=event.case_id).seal(event, "note", note)
