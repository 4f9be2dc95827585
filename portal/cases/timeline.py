"""Timeline notes: what a step was about, sealed like every other free text of the case."""

from __future__ import annotations

from sqlmodel import Session

from portal.cases.models import CaseEvent
from portal.i18n import gettext
from portal.objects import texts


def in_words(note: str | None) -> str | None:
    """A stored note as the reader reads it: the portal's own notes (English, marked ``N_``
    where they are written) in the reader's language; what people wrote, as they wrote it."""
    return gettext(note) if note else note


def seal_note(*, session: Session, event: CaseEvent, note: str | None) -> None:
    """Give ``event`` its row id, then store ``note`` sealed (its binding names the row)."""
    if note is None:
        return
    session.add(event)
    session.flush()
    texts.for_case(session=session, case_id=event.case_id).seal(event, "note", note)
