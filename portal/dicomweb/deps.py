"""Who is calling a DICOMweb route: a signed-in account, or a case-scoped viewer token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from portal.access import Principal
from portal.audit.service import AuditContext
from portal.deps import AnonymousCtx, BoxDep, SessionDep, SettingsDep, authenticate
from portal.dicomweb import tokens
from portal.errors import Forbidden
from portal.i18n import _


@dataclass(frozen=True)
class DicomwebCaller:
    principal: Principal
    ctx: AuditContext
    token_id: uuid.UUID | None
    """The viewer token used, if any (each use is audited with it)."""


def dicomweb_caller(
    request: Request, session: SessionDep, settings: SettingsDep, box: BoxDep, ctx: AnonymousCtx
) -> DicomwebCaller:
    """A viewer token (``Bearer dcmweb_…``) here, or whatever signs in anywhere else."""
    scheme, _space, credentials = request.headers.get("authorization", "").partition(" ")
    token = credentials.strip()
    if scheme.lower() == "bearer" and token.startswith(tokens.PREFIX):
        row, user, principal = tokens.resolve(session=session, token=token)
        return DicomwebCaller(principal, ctx.as_actor(user.id, user.role), row.id)
    caller = authenticate(request, session, settings, box, ctx)
    if caller.auth_session.enrollment_only:
        raise Forbidden(_("Set up two-factor authentication before using the portal."))
    return DicomwebCaller(caller.principal, caller.ctx, None)


DicomwebCallerDep = Annotated[DicomwebCaller, Depends(dicomweb_caller)]
