"""Editing the treatment guide (coordinators and admins: ``treatment.guide.manage``):
conditions, options with their indicative prices, clinics and their offers. Each save is
validated whole before anything is written and audited once; the seed loader uses the same
``apply_*`` steps (see docs/treatment.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from portal import access
from portal.access import Principal
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.db import utcnow
from portal.errors import Conflict, InvalidInput, NotFound
from portal.i18n import N_, gettext
from reviewers.treatment.guide import (
    clinic_by_slug,
    clinic_public,
    condition_by_slug,
    list_clinics,
    localized,
    offers_of_clinic,
    option_by_slug,
    price_text,
    read_conditions,
)
from reviewers.treatment.models import (
    Clinic,
    ClinicOffer,
    ClinicPublic,
    ClinicSave,
    Condition,
    ConditionPublic,
    ConditionSave,
    LanguageTexts,
    OfferSave,
    OptionSave,
    PriceColumns,
    PriceRange,
    TreatmentOption,
)

MANAGE = "treatment.guide.manage"


# --- writing ------------------------------------------------------------------------------------


@dataclass
class Applied:
    """What one save did: a new row, a changed one, or nothing (the same content again)."""

    created: bool = False
    changed: bool = False


def _texts(values: dict[str, Any]) -> LanguageTexts:
    return {
        language: {name: str(value).strip() for name, value in fields.model_dump().items()}
        for language, fields in values.items()
    }


def _assign(row: Any, values: dict[str, Any]) -> bool:
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    if changed:
        row.updated_at = utcnow()
    return changed


def _price(data: PriceColumns | PriceRange) -> dict[str, Any]:
    return {
        "currency": data.currency,
        "price_min": data.price_min,
        "price_max": data.price_max,
        "price_set_on": data.price_set_on,
    }


def apply_condition(session: Session, data: ConditionSave, *, overwrite: bool = True) -> Applied:
    """Create the condition, or (with ``overwrite``) bring an existing one to ``data``."""
    row = condition_by_slug(session, data.slug)
    values: dict[str, Any] = {"position": data.position, "texts": _texts(dict(data.texts))}
    if row is None:
        session.add(Condition(slug=data.slug, **values))
        return Applied(created=True)
    if not overwrite:
        return Applied()
    applied = Applied(changed=_assign(row, values))
    session.add(row)
    return applied


def apply_option(session: Session, data: OptionSave, *, overwrite: bool = True) -> Applied:
    condition = condition_by_slug(session, data.condition)
    if condition is None:
        raise InvalidInput(
            gettext("There is no condition %(slug)s in the guide.", slug=data.condition)
        )
    session.flush()  # a condition added in the same run has its id now
    row = option_by_slug(session, data.slug)
    values: dict[str, Any] = {
        "condition_id": condition.id,
        "position": data.position,
        "texts": _texts(dict(data.texts)),
        **_price(data),
    }
    if row is None:
        session.add(TreatmentOption(slug=data.slug, **values))
        return Applied(created=True)
    if not overwrite:
        return Applied()
    applied = Applied(changed=_assign(row, values))
    session.add(row)
    return applied


def apply_clinic(session: Session, data: ClinicSave, *, overwrite: bool = True) -> Applied:
    row = clinic_by_slug(session, data.slug)
    values: dict[str, Any] = {
        "texts": _texts(dict(data.texts)),
        "country": data.country,
        "languages": sorted(set(data.languages)),
        "contact": data.contact.strip(),
        "active": data.active,
    }
    if row is None:
        session.add(Clinic(slug=data.slug, **values))
        return Applied(created=True)
    if not overwrite:
        return Applied()
    applied = Applied(changed=_assign(row, values))
    session.add(row)
    return applied


def apply_offer(
    session: Session, clinic: Clinic, data: OfferSave, *, overwrite: bool = True
) -> Applied:
    option = option_by_slug(session, data.option)
    if option is None:
        raise InvalidInput(
            gettext("There is no treatment option %(slug)s in the guide.", slug=data.option)
        )
    session.flush()
    row = session.exec(
        select(ClinicOffer).where(
            ClinicOffer.clinic_id == clinic.id, ClinicOffer.option_id == option.id
        )
    ).first()
    if row is None:
        session.add(ClinicOffer(clinic_id=clinic.id, option_id=option.id, **_price(data)))
        return Applied(created=True)
    if not overwrite:
        return Applied()
    applied = Applied(changed=_assign(row, _price(data)))
    session.add(row)
    return applied


def _commit_edit(
    session: Session, ctx: AuditContext, *, action: str, slug: str, applied: Applied
) -> None:
    """Audit the edit and commit it; a concurrent edit of the same slug is a conflict."""
    try:
        audit_service.record(
            session=session,
            ctx=ctx,
            action=action,
            entity_type="treatment_guide",
            entity_id=slug,
            details={"created": applied.created, "changed": applied.changed},
        )
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(
            N_("Someone else saved this entry at the same moment; reload the page and try again.")
        ) from None


def save_condition(
    *, session: Session, principal: Principal, ctx: AuditContext, data: ConditionSave
) -> Applied:
    """Create or update a condition of the guide."""
    access.require(principal, MANAGE)
    applied = apply_condition(session, data)
    _commit_edit(session, ctx, action="treatment.condition.save", slug=data.slug, applied=applied)
    return applied


def save_option(
    *, session: Session, principal: Principal, ctx: AuditContext, data: OptionSave
) -> Applied:
    """Create or update a treatment option and its indicative price range."""
    access.require(principal, MANAGE)
    applied = apply_option(session, data)
    _commit_edit(session, ctx, action="treatment.option.save", slug=data.slug, applied=applied)
    return applied


def save_clinic(
    *, session: Session, principal: Principal, ctx: AuditContext, data: ClinicSave
) -> Applied:
    """Create or update a clinic (deactivate it rather than delete: requests name it)."""
    access.require(principal, MANAGE)
    applied = apply_clinic(session, data)
    _commit_edit(session, ctx, action="treatment.clinic.save", slug=data.slug, applied=applied)
    return applied


def _clinic_or_404(session: Session, slug: str) -> Clinic:
    clinic = clinic_by_slug(session, slug)
    if clinic is None:
        raise NotFound(N_("There is no such clinic in the guide."))
    return clinic


def save_offer(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    clinic_slug: str,
    data: OfferSave,
) -> Applied:
    """Create or update what a clinic offers for an option, at its indicative price."""
    access.require(principal, MANAGE)
    clinic = _clinic_or_404(session, clinic_slug)
    applied = apply_offer(session, clinic, data)
    _commit_edit(
        session,
        ctx,
        action="treatment.offer.save",
        slug=f"{clinic.slug}/{data.option}",
        applied=applied,
    )
    return applied


def remove_offer(
    *,
    session: Session,
    principal: Principal,
    ctx: AuditContext,
    clinic_slug: str,
    option_slug: str,
) -> None:
    """The clinic no longer offers the option."""
    access.require(principal, MANAGE)
    clinic = _clinic_or_404(session, clinic_slug)
    offer = next(
        (
            row
            for row, option in offers_of_clinic(session=session, clinic=clinic)
            if option.slug == option_slug
        ),
        None,
    )
    if offer is None:
        raise NotFound(N_("The clinic does not offer this treatment."))
    session.delete(offer)
    _commit_edit(
        session,
        ctx,
        action="treatment.offer.remove",
        slug=f"{clinic.slug}/{option_slug}",
        applied=Applied(changed=True),
    )


# --- the editor's reading -----------------------------------------------------------------------

NEW = "new"
"""The slug in an editor's address that asks for an empty form."""


@dataclass
class OptionEdit:
    row: TreatmentOption
    condition: str


@dataclass
class OfferEdit:
    option: str
    option_name: str
    row: ClinicOffer
    price: str


@dataclass
class ClinicEdit:
    row: Clinic
    offers: list[OfferEdit]


def read_for_editing(
    *, session: Session, principal: Principal
) -> tuple[list[ConditionPublic], list[ClinicPublic]]:
    """The whole guide for its editors: conditions with options, and every clinic."""
    access.require(principal, MANAGE)
    conditions, _more = read_conditions(session=session, with_offers=False)
    return conditions, [clinic_public(row) for row in list_clinics(session=session)]


def editable_condition(*, session: Session, principal: Principal, slug: str) -> Condition | None:
    """The condition to edit, or None for a new one."""
    access.require(principal, MANAGE)
    if slug == NEW:
        return None
    row = condition_by_slug(session, slug)
    if row is None:
        raise NotFound(N_("There is no such condition in the guide."))
    return row


def editable_option(*, session: Session, principal: Principal, slug: str) -> OptionEdit | None:
    """The treatment option to edit with its condition's slug, or None for a new one."""
    access.require(principal, MANAGE)
    if slug == NEW:
        return None
    found = session.exec(
        select(TreatmentOption, Condition.slug)
        .join(Condition, col(Condition.id) == col(TreatmentOption.condition_id))
        .where(TreatmentOption.slug == slug)
    ).first()
    if found is None:
        raise NotFound(N_("There is no such treatment option in the guide."))
    return OptionEdit(row=found[0], condition=found[1])


def editable_clinic(*, session: Session, principal: Principal, slug: str) -> ClinicEdit | None:
    """The clinic to edit with what it offers, or None for a new one."""
    access.require(principal, MANAGE)
    if slug == NEW:
        return None
    clinic = _clinic_or_404(session, slug)
    offers = [
        OfferEdit(
            option=option.slug,
            option_name=localized(option.texts).get("name", option.slug),
            row=offer,
            price=price_text(offer),
        )
        for offer, option in offers_of_clinic(session=session, clinic=clinic)
    ]
    return ClinicEdit(row=clinic, offers=offers)
