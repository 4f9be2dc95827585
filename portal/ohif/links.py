"""Links into the viewer from the portal's pages: absent while the viewer is not installed."""

from __future__ import annotations

import uuid

from jinja2 import pass_context
from jinja2.runtime import Context

from portal.ohif.bundle import installed_for
from portal.ohif.urls import viewer_url
from portal.settings import Settings


def study_url(*, settings: Settings, case_id: uuid.UUID, study_uid: str) -> str | None:
    """Where OHIF shows ``study_uid`` of the case, or ``None`` when OHIF is not installed."""
    if installed_for(settings) is None:
        return None
    return viewer_url(case_id, study_uid)


@pass_context
def ohif_study_url(context: Context, case_id: uuid.UUID, study_uid: str) -> str | None:
    """``study_url`` for templates: ``{% set url = ohif_study_url(case.id, study_uid) %}``."""
    settings: Settings = context["request"].app.state.settings
    return study_url(settings=settings, case_id=case_id, study_uid=study_uid)
