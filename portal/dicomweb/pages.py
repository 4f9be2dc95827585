"""The case page's "Open in your own viewer" forms: make and revoke read-only tokens."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from portal.deps import SessionDep, SettingsDep
from portal.dicomweb import tokens
from portal.inputs import SingleLineText
from portal.pages import case_page as case_page_builder
from portal.web.deps import FormCaller
from portal.web.templating import render, see_other

router = APIRouter(tags=["pages"])


@router.post("/cases/{case_id}/viewer-tokens")
def make_token(
    request: Request,
    case_id: uuid.UUID,
    caller: FormCaller,
    session: SessionDep,
    settings: SettingsDep,
    label: Annotated[SingleLineText, Form(max_length=100)] = "",
) -> Response:
    """Shows the case page with the new token, this once (it is never in a URL or stored)."""
    _row, token = tokens.issue(
        session=session,
        settings=settings,
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        label=label,
    )
    context = case_page_builder.case_context(
        session=session, settings=settings, caller=caller, case_id=case_id
    )
    context["issued_token"] = token
    response = render(request, "cases/case.html", context)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/cases/{case_id}/viewer-tokens/{token_id}/revoke")
def revoke_token(
    case_id: uuid.UUID, token_id: uuid.UUID, caller: FormCaller, session: SessionDep
) -> Response:
    tokens.revoke(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        token_id=token_id,
    )
    return see_other(f"/cases/{case_id}#own-viewer")
