"""Plain-text mail per notification kind: a greeting, one generic paragraph, the case link.

Templates see only the recipient's own name, the case reference (``SO-7KQ2MX``, no patient
data), the link and the deadline. They are never handed the case's subject, question,
history, the patient's name or anything clinical, so no template can leak them.

Every string is an English gettext message (marked with ``N_``), translated when a message is
rendered: ``render`` speaks the current language, which ``service.notify`` sets to the
recipient's (``portal.i18n.speaking``). Dates are written as that language writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from portal.i18n import N_, format_minute, gettext
from portal.notifications.models import NotificationKind

_ = gettext
K = NotificationKind
SIGNATURE = N_("Second Opinion Portal")
PRIVACY_LINE = N_(
    "For your privacy this e-mail contains no medical details: the case is only available "
    "after you sign in to the portal."
)
FOOTER = N_("This message was sent automatically; replies to it are not read.")
GREETING = N_("Hello %(name)s,")


@dataclass(frozen=True)
class Template:
    subject: str
    """An English message; may use ``%(reference)s``."""
    text: str
    """An English message; may use ``%(reference)s`` and ``%(due)s`` (the deadline)."""


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    body: str


TEMPLATES: dict[NotificationKind, Template] = {
    K.case_submitted: Template(
        N_("We have received your case %(reference)s"),
        N_(
            "Thank you: we have received your case %(reference)s. We are now choosing the "
            "specialist best suited to your question. They will study your images and records; "
            "if they need more information, they will ask you in the portal and we will let you "
            "know by e-mail. You can expect the written opinion by %(due)s (the time you take "
            "to answer a question is added). You can follow your case, answer questions and "
            "read the opinion here:"
        ),
    ),
    K.case_assigned: Template(
        N_("New case assigned to you: %(reference)s"),
        N_(
            "Case %(reference)s has been assigned to you for a second opinion. Please review "
            "the request and accept or decline it:"
        ),
    ),
    K.due_soon: Template(
        N_("Case due soon: %(reference)s"),
        N_(
            "Your opinion on case %(reference)s is due by %(due)s. You can continue your "
            "review here:"
        ),
    ),
    K.info_provided: Template(
        N_("The patient answered your question: %(reference)s"),
        N_(
            "The patient has answered your question on case %(reference)s. You can continue "
            "your review here:"
        ),
    ),
    K.follow_up_asked: Template(
        N_("Follow-up question on case %(reference)s"),
        N_(
            "The patient has asked a follow-up question on case %(reference)s. You can read it "
            "and reply here:"
        ),
    ),
    K.info_requested: Template(
        N_("Your specialist has a question for you"),
        N_(
            "The specialist reviewing your case %(reference)s needs more information from you. "
            "Please read the question and answer it in the portal:"
        ),
    ),
    K.opinion_delivered: Template(
        N_("Your second opinion is ready"),
        N_(
            "The specialist has completed the second opinion on your case %(reference)s. You "
            "can read it and download it as a PDF here:"
        ),
    ),
    K.case_overdue: Template(
        N_("Case overdue: %(reference)s"),
        N_(
            "Case %(reference)s was due by %(due)s and has no opinion yet. Please check it and "
            "reassign it if needed:"
        ),
    ),
    K.acceptance_timed_out: Template(
        N_("Case not accepted in time: %(reference)s"),
        N_(
            "The specialist assigned to case %(reference)s did not accept or decline it in "
            "time. Please assign it:"
        ),
    ),
    K.triage_needed: Template(
        N_("Case needs triage: %(reference)s"),
        N_(
            "No specialist could be matched automatically for case %(reference)s. Please triage it:"
        ),
    ),
    K.break_glass: Template(
        N_("An administrator opened your case %(reference)s"),
        N_(
            "An administrator of the portal opened the documents and images of your case "
            "%(reference)s for a limited time, for a reason they had to record. You can see "
            "when and why on the case's page; if you did not expect this, please contact us:"
        ),
    ),
    K.treatment_requested: Template(
        N_("Treatment plan requested: %(reference)s"),
        N_(
            "The patient of case %(reference)s has asked for a treatment plan. Please review "
            "the request and answer it here:"
        ),
    ),
    K.treatment_answered: Template(
        N_("Your treatment plan request has been answered"),
        N_(
            "Our coordinator has answered your treatment plan request on case %(reference)s. "
            "You can read the answer here:"
        ),
    ),
}


ACCOUNT_TEMPLATES: dict[NotificationKind, Template] = {
    K.registration_attempt: Template(
        N_("Someone tried to register with your e-mail address"),
        N_(
            "Someone tried to create a new account in the portal with your e-mail address. "
            "You already have an account, so nothing was changed. If it was you, sign in with "
            "your password here. If it was not, you do not need to do anything:"
        ),
    ),
}
"""Messages about the account itself, not about a case: no reference, a link to sign in."""


def format_due(due_at: datetime | None) -> str:
    """``12 Mar 2026, 14:00 UTC`` in the current language; a dash without a deadline."""
    return format_minute(due_at)


def render(
    *,
    kind: NotificationKind,
    recipient_name: str,
    reference: str,
    link: str,
    due_at: datetime | None = None,
) -> RenderedMail:
    """Subject and body of one message, in the current language."""
    template = TEMPLATES[kind]
    values = {"reference": reference, "due": format_due(due_at)}
    body = "\n\n".join(
        [
            _(GREETING, name=recipient_name),
            _(template.text, **values),
            link,
            _(PRIVACY_LINE),
            f"{_(SIGNATURE)}\n{_(FOOTER)}",
        ]
    )
    return RenderedMail(subject=_(template.subject, **values), body=body + "\n")


def render_account(*, kind: NotificationKind, recipient_name: str, link: str) -> RenderedMail:
    """Subject and body of a message about the recipient's account, in the current language."""
    template = ACCOUNT_TEMPLATES[kind]
    body = "\n\n".join(
        [_(GREETING, name=recipient_name), _(template.text), link, f"{_(SIGNATURE)}\n{_(FOOTER)}"]
    )
    return RenderedMail(subject=_(template.subject), body=body + "\n")
