"""Plain-text mail per notification kind: a greeting, one generic sentence, the case link.

Templates see only the recipient's own name, the case reference (``SO-7KQ2MX``, no patient
data), the link and the deadline. They are never handed the case's subject, question,
history, the patient's name or anything clinical, so no template can leak them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from portal.notifications.models import NotificationKind

K = NotificationKind
SIGNATURE = "Second Opinion Portal"
PRIVACY_LINE = (
    "For your privacy this e-mail contains no medical details: the case is only available "
    "after you sign in to the portal."
)
FOOTER = "This message was sent automatically; replies to it are not read."


@dataclass(frozen=True)
class Template:
    subject: str
    """May use ``{reference}``."""
    text: str
    """May use ``{reference}`` and ``{due}`` (the deadline, or "soon" when there is none)."""


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    body: str


TEMPLATES: dict[NotificationKind, Template] = {
    K.case_assigned: Template(
        "New case assigned to you: {reference}",
        "Case {reference} has been assigned to you for a second opinion. Please review the "
        "request and accept or decline it:",
    ),
    K.due_soon: Template(
        "Case due soon: {reference}",
        "Your opinion on case {reference} is due {due}. You can continue your review here:",
    ),
    K.info_provided: Template(
        "The patient answered your question: {reference}",
        "The patient has answered your question on case {reference}. You can continue your "
        "review here:",
    ),
    K.follow_up_asked: Template(
        "Follow-up question on case {reference}",
        "The patient has asked a follow-up question on case {reference}. You can read it and "
        "reply here:",
    ),
    K.info_requested: Template(
        "Your specialist has a question for you",
        "The specialist reviewing your case {reference} needs more information from you. "
        "Please read the question and answer it in the portal:",
    ),
    K.opinion_delivered: Template(
        "Your second opinion is ready",
        "The specialist has completed the second opinion on your case {reference}. You can "
        "read it and download it as a PDF here:",
    ),
    K.case_overdue: Template(
        "Case overdue: {reference}",
        "Case {reference} was due {due} and has no opinion yet. Please check it and reassign "
        "it if needed:",
    ),
    K.acceptance_timed_out: Template(
        "Case not accepted in time: {reference}",
        "The specialist assigned to case {reference} did not accept or decline it in time. "
        "Please assign it:",
    ),
    K.triage_needed: Template(
        "Case needs triage: {reference}",
        "No specialist could be matched automatically for case {reference}. Please triage it:",
    ),
    K.break_glass: Template(
        "An administrator opened your case {reference}",
        "An administrator of the portal opened the documents and images of your case "
        "{reference} for a limited time, for a reason they had to record. You can see when "
        "and why on the case's page; if you did not expect this, please contact us:",
    ),
    K.treatment_requested: Template(
        "Treatment plan requested: {reference}",
        "The patient of case {reference} has asked for a treatment plan. Please review the "
        "request and answer it here:",
    ),
    K.treatment_answered: Template(
        "Your treatment plan request has been answered",
        "Our coordinator has answered your treatment plan request on case {reference}. You can "
        "read the answer here:",
    ),
}


ACCOUNT_TEMPLATES: dict[NotificationKind, Template] = {
    K.registration_attempt: Template(
        "Someone tried to register with your e-mail address",
        "Someone tried to create a new account in the portal with your e-mail address. You "
        "already have an account, so nothing was changed. If it was you, sign in with your "
        "password here. If it was not, you do not need to do anything:",
    ),
}
"""Messages about the account itself, not about a case: no reference, a link to sign in."""


def format_due(due_at: datetime | None) -> str:
    """``on 12 March 2026, 14:00 UTC``, or ``soon`` without a deadline."""
    if due_at is None:
        return "soon"
    return f"on {due_at.astimezone(UTC):%d %B %Y, %H:%M} UTC"


def render(
    *,
    kind: NotificationKind,
    recipient_name: str,
    reference: str,
    link: str,
    due_at: datetime | None = None,
) -> RenderedMail:
    """Subject and body of one message (English)."""
    template = TEMPLATES[kind]
    values = {"reference": reference, "due": format_due(due_at)}
    body = "\n\n".join(
        [
            f"Hello {recipient_name},",
            template.text.format(**values),
            link,
            PRIVACY_LINE,
            f"{SIGNATURE}\n{FOOTER}",
        ]
    )
    return RenderedMail(subject=template.subject.format(**values), body=body + "\n")


def render_account(*, kind: NotificationKind, recipient_name: str, link: str) -> RenderedMail:
    """Subject and body of a message about the recipient's account (English)."""
    template = ACCOUNT_TEMPLATES[kind]
    body = "\n\n".join([f"Hello {recipient_name},", template.text, link, f"{SIGNATURE}\n{FOOTER}"])
    return RenderedMail(subject=template.subject, body=body + "\n")
