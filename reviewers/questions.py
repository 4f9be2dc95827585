"""Questions both ways: the specialist asks the patient before the opinion (the case waits for
the answers), and after delivery the patient may ask a few follow-ups, answered as addenda."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlmodel import Session, col, func, select

from portal import access
from portal.access import Principal
from portal.accounts.models import Role, User
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.cases.models import Case, CaseStatus
from portal.db import utcnow
from portal.errors import Conflict, Forbidden, NotFound
from portal.i18n import N_, _, ngettext
from portal.notifications import service as notifications
from portal.notifications.models import NotificationKind
from portal.objects import texts
from portal.objects.texts import CaseTexts
from portal.settings import Settings
from reviewers import opinions, workflow
from reviewers.models import CaseQuestion, QuestionKind, QuestionPublic

S = CaseStatus


def list_questions(
    *, session: Session, principal: Principal, ctx: AuditContext, case_id: uuid.UUID
) -> list[QuestionPublic]:
    """Every question on the case with its answer, oldest first."""
    case = access.case_for(
        session=session, principal=principal, case_id=case_id, action="case.clinical.read"
    )
    rows = session.exec(
        select(CaseQuestion, User.role)
        .join(User, col(User.id) == col(CaseQuestion.asked_by))
        .where(CaseQuestion.case_id == case.id)
        .order_by(col(CaseQuestion.asked_at), col(CaseQuestion.id))
    ).all()
    audit_service.record_read(
        session=session,
        ctx=ctx,
        action="question.list",
        case_id=case.id,
        details={"count": len(rows)},
    )
    session.commit()
    sealer = texts.for_case(session=session, case_id=case.id)
    return [_public(question, Role(role), sealer) for question, role in rows]


def _public(question: CaseQuestion, role: Role, sealer: CaseTexts) -> QuestionPublic:
    return QuestionPublic(
        id=question.id,
        kind=question.kind,
        asked_at=question.asked_at,
        asked_by_role=role.value,
        text=sealer.open(question, "text") or "",
        answered_at=question.answered_at,
        answer=sealer.open(question, "answer"),
    )


def open_text(*, session: Session, question: CaseQuestion) -> tuple[str, str | None]:
    """The question and its answer in clear, for the pages and the opinion that show them."""
    sealer = texts.for_case(session=session, case_id=question.case_id)
    return sealer.open(question, "text") or "", sealer.open(question, "answer")


def ask(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    settings: Settings,
    case_id: uuid.UUID,
    text: str,
) -> QuestionPublic:
    """The assigned specialist asks the patient (the case then waits for the answer), or the
    patient asks a follow-up about a delivered opinion."""
    case = access.case_for(session=session, principal=principal, case_id=case_id)
    case = workflow.lock_case(session=session, case=case)
    if access.may_ever(principal, ["case.clarification.ask"]):
        question = _ask_patient(session, principal, ctx, settings, case, text)
    elif access.may(principal, case, "case.follow_up.ask"):
        question = _ask_follow_up(session, principal, ctx, settings, case, text)
    else:
        raise Forbidden(_("Only the case's specialist or its patient can ask questions here."))
    session.commit()
    return _public(question, principal.role, texts.for_case(session=session, case_id=case.id))


def _ask_patient(
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    settings: Settings,
    case: Case,
    text: str,
) -> CaseQuestion:
    if case.status not in {S.in_review, S.info_requested}:
        raise Conflict(_("Questions to the patient can be asked while the case is in review."))
    question = CaseQuestion(
        case_id=case.id, kind=QuestionKind.clarification, asked_by=principal.user_id
    )
    texts.for_case(session=session, case_id=case.id).seal(question, "text", text)
    session.add(question)
    session.flush()
    _audit(session, ctx, "question.ask", question)
    if case.status == S.in_review:
        workflow.transition(
            session=session,
            case=case,
            to=S.info_requested,
            principal=principal,
            ctx=ctx,
            base_url=settings.base_url,
            note=N_("The specialist asked the patient a question."),
        )
    return question


def _ask_follow_up(
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    settings: Settings,
    case: Case,
    text: str,
) -> CaseQuestion:
    if case.status != S.opinion_delivered:
        raise Conflict(_("Follow-up questions can be asked once the opinion has been delivered."))
    asked = session.exec(
        select(func.count())
        .select_from(CaseQuestion)
        .where(CaseQuestion.case_id == case.id)
        .where(CaseQuestion.kind == QuestionKind.follow_up)
    ).one()
    if asked >= settings.max_follow_up_questions:
        raise Conflict(
            ngettext(
                "You have asked the %(num)s follow-up question this case allows.",
                "You have asked the %(num)s follow-up questions this case allows.",
                settings.max_follow_up_questions,
            )
        )
    question = CaseQuestion(
        case_id=case.id, kind=QuestionKind.follow_up, asked_by=principal.user_id
    )
    texts.for_case(session=session, case_id=case.id).seal(question, "text", text)
    session.add(question)
    session.flush()
    _audit(session, ctx, "question.ask", question)
    if case.assigned_specialist_id is not None:
        specialist = session.get(User, case.assigned_specialist_id)
        if specialist is not None and specialist.is_active:
            notifications.notify(
                session=session,
                kind=NotificationKind.follow_up_asked,
                recipient=specialist,
                case=case,
                base_url=settings.base_url,
            )
    return question


def answer(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    settings: Settings,
    case_id: uuid.UUID,
    question_id: uuid.UUID,
    text: str,
) -> QuestionPublic:
    """The other side answers: the patient a clarification (review resumes once all are
    answered), the specialist a follow-up (as a dated addendum to the signed opinion)."""
    case = access.case_for(session=session, principal=principal, case_id=case_id)
    case = workflow.lock_case(session=session, case=case)
    question = session.get(CaseQuestion, question_id)
    if question is None or question.case_id != case.id:
        raise NotFound(_("Question not found."))
    clarification = question.kind == QuestionKind.clarification
    action = "case.clarification.answer" if clarification else "case.follow_up.answer"
    if not access.may(principal, case, action):
        raise Forbidden(
            _("Only the patient can answer the specialist's questions.")
            if clarification
            else _("Only the case's specialist can answer follow-up questions.")
        )
    if question.answered_at is not None:
        raise Conflict(_("This question has already been answered."))
    texts.for_case(session=session, case_id=case.id).seal(question, "answer", text)
    question.answered_by = principal.user_id
    question.answered_at = utcnow()
    session.add(question)
    _audit(session, ctx, "question.answer", question)
    if question.kind == QuestionKind.follow_up:
        opinions.add_addendum(
            session=session, principal=principal, ctx=ctx, case=case, text=text, question=question
        )
    elif case.status == S.info_requested and not _open_clarifications(session, case):
        workflow.transition(
            session=session,
            case=case,
            to=S.in_review,
            principal=principal,
            ctx=ctx,
            base_url=settings.base_url,
            note=N_("The patient answered the specialist's questions."),
        )
    session.commit()
    asker = session.get(User, question.asked_by)
    sealer = texts.for_case(session=session, case_id=case.id)
    return _public(question, asker.role if asker else Role.patient, sealer)


def _open_clarifications(session: Session, case: Case) -> Sequence[uuid.UUID]:
    return session.exec(
        select(CaseQuestion.id)
        .where(CaseQuestion.case_id == case.id)
        .where(CaseQuestion.kind == QuestionKind.clarification)
        .where(col(CaseQuestion.answered_at).is_(None))
    ).all()


def _audit(session: Session, ctx: AuditContext, action: str, question: CaseQuestion) -> None:
    audit_service.record(
        session=session,
        ctx=ctx,
        action=action,
        entity_type="question",
        entity_id=question.id,
        case_id=question.case_id,
        details={"kind": question.kind.value},
    )
