"""Case-scoped viewer tokens: ``/api/cases/{case_id}/dicomweb-tokens``."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response

from portal.deps import Caller, SessionDep, SettingsDep
from portal.dicomweb import tokens
from portal.dicomweb.models import TokenCreate, TokenIssued, TokenPublic

router = APIRouter(prefix="/api/cases/{case_id}/dicomweb-tokens", tags=["dicomweb"])


@router.post("", status_code=201, summary="Make a read-only DICOMweb token for this case")
def issue_token(
    case_id: uuid.UUID,
    request: Request,
    caller: Caller,
    session: SessionDep,
    settings: SettingsDep,
    data: TokenCreate | None = None,
) -> TokenIssued:
    """The token is in this answer only; keep it like a password until it expires."""
    row, token = tokens.issue(
        session=session,
        settings=settings,
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        label=data.label if data else None,
    )
    url = f"{str(request.base_url).rstrip('/')}/api/cases/{case_id}/dicomweb"
    return TokenIssued(id=row.id, token=token, expires_at=row.expires_at, dicomweb_url=url)


@router.get("", summary="The case's viewer tokens (without the tokens themselves)")
def list_tokens(case_id: uuid.UUID, caller: Caller, session: SessionDep) -> list[TokenPublic]:
    return tokens.list_tokens(session=session, principal=caller.principal, case_id=case_id)


@router.delete("/{token_id}", status_code=204, summary="Revoke a viewer token")
def revoke_token(
    case_id: uuid.UUID, token_id: uuid.UUID, caller: Caller, session: SessionDep
) -> Response:
    tokens.revoke(
        session=session,
        principal=caller.principal,
        ctx=caller.ctx,
        case_id=case_id,
        token_id=token_id,
    )
    return Response(status_code=204)
