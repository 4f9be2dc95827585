"""The e-mails about an account's password, in the account's language.

Like every mail of the portal they hold the recipient's own name and a link, nothing else
(docs/notifications.md). A reset link is a secret: ``reset_link_mail`` gives the body that is
sent and the same body without the link, which is all the outbox keeps readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from portal import i18n
from portal.accounts.models import User
from portal.i18n import _
from portal.notifications.models import NotificationKind

KINDS = frozenset({NotificationKind.password_reset, NotificationKind.password_changed})
"""The notification kinds rendered here (in the account's language), not by
``portal.notifications.templates``."""


@dataclass(frozen=True)
class AccountMail:
    subject: str
    body: str
    """The text kept readable in the outbox."""
    secret_body: str | None = None
    """The text sent, when it carries a secret (sealed in the outbox)."""


def _compose(user: User, paragraphs: list[str]) -> str:
    footer = _("This message was sent automatically; replies to it are not read.")
    closing = "\n".join([_("Second Opinion Portal"), footer])
    greeting = _("Hello %(name)s,", name=user.full_name)
    return "\n\n".join([greeting, *paragraphs, closing]) + "\n"


def reset_link_mail(*, user: User, link: str, minutes: int) -> AccountMail:
    """The link to choose a new password (sent and sealed) and its readable stand-in."""
    with i18n.speaking(user.language):
        asked = i18n.ngettext(
            "Someone, we hope you, asked to choose a new password for your account in the "
            "portal. Open this link within %(num)s minute to choose it; it works once:",
            "Someone, we hope you, asked to choose a new password for your account in the "
            "portal. Open this link within %(num)s minutes to choose it; it works once:",
            minutes,
        )
        ignore = _(
            "If you did not ask for this, you can ignore this e-mail: your password stays as it "
            "is. Nobody can choose a new one without this link."
        )
        withheld = _("(the link is only in the e-mail that was sent)")
        return AccountMail(
            subject=_("Choose a new password"),
            body=_compose(user, [asked, withheld, ignore]),
            secret_body=_compose(user, [asked, link, ignore]),
        )


def password_changed_mail(*, user: User, when: datetime, reset_link: str) -> AccountMail:
    """Tells the owner the password changed and every device was signed out."""
    with i18n.speaking(user.language):
        changed = _(
            "The password of your account in the portal was changed on %(moment)s, and every "
            "device signed in to the account was signed out. If it was you, there is nothing "
            "more to do.",
            moment=i18n.format_moment(when),
        )
        not_you = _(
            "If it was not you, someone knows your e-mail password or had this link: choose a "
            "new password at once here:"
        )
        return AccountMail(
            subject=_("Your password was changed"),
            body=_compose(user, [changed, not_you, reset_link]),
        )
