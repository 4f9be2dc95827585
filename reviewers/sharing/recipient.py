"""The recipient's side of a share link: opening it, its access code, and recording each use.

A link that is unknown, revoked or expired, or whose patient's account is closed, is refused
with one and the same :class:`LinkNotFound`, whatever the reason. An open link acts as a
principal scoped to its case and to reading what the patient chose to show
(:data:`portal.access.SHARE_ACTIONS`, plus :data:`portal.access.SHARE_IMAGE_ACTIONS` for
images), for the patient who made it: it never reads more than that patient may.
"""

from __future__ import annotations

import hmac
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select, update

from portal import access
from portal.access import Principal
from portal.accounts.models import Role, User
from portal.accounts.service import hash_token
from portal.audit import service as audit_service
from portal.audit.service import AuditContext, DetailValue
from portal.db import utcnow
from portal.errors import Forbidden, NotFound, TooManyRequests
from portal.i18n import N_, ngettext
from portal.sealing import SecretBox
from reviewers.sharing.models import ShareLink
from reviewers.sharing.service import CODE_DIGITS, code_hash

ACTOR_ROLE = "share_link"
"""The audit trail's actor role for what a link does; the actor id is the link's id."""
TOKEN_LENGTHS = range(20, 101)
CODE_TRIES = 5
CODE_WINDOW = timedelta(minutes=15)
GRANT_LIFETIME = timedelta(hours=12)
"""How long a browser that gave the right code may keep using the link without it again."""
GRANT_PURPOSE = "share-link-grant"


class LinkNotFound(NotFound):
    default_message = N_(
        "This link does not work. It may have expired or been withdrawn by the patient who "
        "shared it: ask them for a new one."
    )


class WrongAccessCode(Forbidden):
    default_message = N_("That access code is not right. Check it and type it again.")


class CodeRequired(Forbidden):
    default_message = N_("Open the link and enter its access code first.")


class ImagesNotShared(LinkNotFound):
    """The patient did not share the images: answered like a missing link."""


@dataclass(frozen=True)
class OpenLink:
    """A working link, the principal it acts as, and the audit context of its use."""

    link: ShareLink
    principal: Principal
    ctx: AuditContext

    @property
    def case_id(self) -> uuid.UUID:
        return self.link.case_id

    @property
    def needs_code(self) -> bool:
        return self.link.code_hash is not None


def open_link(*, session: Session, token: str, ctx: AuditContext) -> OpenLink:
    """The working link of ``token``.

    Raises
    ------
    LinkNotFound
        Unknown, revoked or expired, or its patient's account is closed (one answer for all).
    """
    if len(token) not in TOKEN_LENGTHS or not token.isascii():
        raise LinkNotFound()
    found = session.exec(
        select(ShareLink, User)
        .join(User, col(User.id) == col(ShareLink.created_by))
        .where(ShareLink.token_hash == hash_token(token))
    ).first()
    if found is None:
        session.rollback()
        raise LinkNotFound()
    link, user = found
    link_ctx = AuditContext(link.id, ACTOR_ROLE, ctx.client_ip, ctx.request_id, ctx.reads)
    dead = _why_not_working(link, user)
    if dead is not None:
        # Still the link's use: the patient sees in the trail that someone tried it.
        _audit(session, link_ctx, link, "share.refused", outcome="refused", reason=dead)
        session.commit()
        raise LinkNotFound()
    scope = access.SHARE_ACTIONS | (access.SHARE_IMAGE_ACTIONS if link.images else frozenset())
    principal = Principal(
        user_id=user.id,
        role=Role(user.role),
        session_id=link.id,  # what the viewer's first-view audit counts views per
        scope_case_id=link.case_id,
        scope_actions=scope,
    )
    session.commit()
    return OpenLink(link, principal, link_ctx)


def require_images(opened: OpenLink) -> None:
    """Raise :class:`ImagesNotShared` (a 404, like a missing link) unless images were shared."""
    if not opened.link.images:
        raise ImagesNotShared()


def record_use(*, session: Session, opened: OpenLink, action: str, **details: DetailValue) -> None:
    """Audit one use of the link (with its id) and count it; the caller's reads that follow in
    this request are covered by this row."""
    now = utcnow()
    session.exec(
        update(ShareLink)
        .where(col(ShareLink.id) == opened.link.id)
        .values(uses=col(ShareLink.uses) + 1, last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    audit_service.record_read(
        session=session,
        ctx=opened.ctx,
        action=action,
        case_id=opened.case_id,
        entity_type="share_link",
        entity_id=opened.link.id,
        details=details or None,
    )
    session.commit()


# --- the access code -------------------------------------------------------------------------


def grant_for(box: SecretBox, link: ShareLink) -> str:
    """What a browser keeps (in a cookie) after the right code: the moment it ends, signed
    with the link and its code; it never outlives the link."""
    ends = min(link.expires_at, utcnow() + GRANT_LIFETIME)
    moment = int(ends.timestamp())
    return f"{moment}.{box.sign(GRANT_PURPOSE, f'{link.id}:{moment}:{link.code_hash}')}"


def holds_grant(box: SecretBox, opened: OpenLink, grant: str | None) -> bool:
    """Whether the browser may use the link now: no code asked for, or a valid grant."""
    link = opened.link
    if link.code_hash is None:
        return True
    moment, _dot, signature = (grant or "").partition(".")
    if not moment.isdigit() or len(moment) > 11:  # past 11 digits: beyond year 9999
        return False
    if datetime.fromtimestamp(int(moment), UTC) <= utcnow():
        return False
    return box.verify(GRANT_PURPOSE, f"{link.id}:{moment}:{link.code_hash}", signature)


def require_grant(box: SecretBox, opened: OpenLink, grant: str | None) -> None:
    if not holds_grant(box, opened, grant):
        raise CodeRequired()


def enter_code(*, session: Session, box: SecretBox, opened: OpenLink, code: str) -> str:
    """Check the access code; return the grant for the browser.

    At most :data:`CODE_TRIES` wrong codes per link in :data:`CODE_WINDOW` (from the first of
    them): after that every try is refused, the right code too, until the window has passed.

    Raises
    ------
    TooManyRequests
        The link's tries are used up for now (429 with the wait).
    WrongAccessCode
        Not the link's code (the try is counted and audited).
    """
    now = utcnow()
    link = session.exec(
        select(ShareLink)
        .where(col(ShareLink.id) == opened.link.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if link.code_failures_since is not None and link.code_failures_since + CODE_WINDOW <= now:
        link.code_failures, link.code_failures_since = 0, None
    if link.code_failures >= CODE_TRIES and link.code_failures_since is not None:
        wait = math.ceil((link.code_failures_since + CODE_WINDOW - now).total_seconds())
        _audit(session, opened.ctx, link, "share.code", outcome="throttled")
        session.commit()
        raise TooManyRequests(
            ngettext(
                "Too many wrong access codes. Try again in %(num)s minute.",
                "Too many wrong access codes. Try again in %(num)s minutes.",
                math.ceil(wait / 60),
            ),
            retry_after=wait,
        )
    if not code_matches(box, link, code):
        if link.code_failures_since is None:
            link.code_failures_since = now
        link.code_failures += 1
        session.add(link)
        _audit(session, opened.ctx, link, "share.code", outcome="failure")
        session.commit()
        raise WrongAccessCode()
    _audit(session, opened.ctx, link, "share.code")
    session.commit()
    return grant_for(box, link)


def code_matches(box: SecretBox, link: ShareLink, code: str) -> bool:
    """Whether ``code`` (spaces and hyphens allowed) is the link's access code."""
    digits = "".join(code.split()).replace("-", "")
    if link.code_hash is None or len(digits) != CODE_DIGITS or not digits.isdigit():
        return False
    return hmac.compare_digest(code_hash(box, link.id, digits), link.code_hash)


def _why_not_working(link: ShareLink, user: User) -> str | None:
    if link.revoked_at is not None:
        return "revoked"
    if link.expires_at <= utcnow():
        return "expired"
    if not user.is_active:
        return "account_closed"
    return None


def _audit(
    session: Session,
    ctx: AuditContext,
    link: ShareLink,
    action: str,
    *,
    outcome: str = "success",
    **details: DetailValue,
) -> None:
    audit_service.record(
        session=session,
        ctx=ctx,
        action=action,
        outcome=outcome,
        entity_type="share_link",
        entity_id=link.id,
        case_id=link.case_id,
        details=details or None,
    )
