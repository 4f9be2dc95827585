"""The treatment guide as managed content: conditions, their treatment options with indicative
prices, clinics and what they offer. Read by everyone signed in, in the interface's language;
edited by coordinators (``treatment.guide.manage``), each change audited.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from babel import Locale, UnknownLocaleError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from portal import access, i18n, pagination
from portal.access import Principal
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.db import utcnow
from portal.errors import Conflict, InvalidInput, NotFound
from portal.i18n import N_, gettext
from portal.pagination import PageRequest
from reviewers.treatment.models import (
    Clinic,
    ClinicOffer,
    ClinicPublic,
    ClinicSave,
    Condition,
    ConditionPublic,
    ConditionSave,
    LanguageTexts,
    OfferPublic,
    OfferSave,
    OptionPublic,
    OptionSave,
    PriceColumns,
    PricePublic,
    PriceRange,
    TreatmentOption,
)

MANAGE = "treatment.guide.manage"


# --- reading ------------------------------------------------------------------------------------


def localized(texts: LanguageTexts, language: str | None = None) -> dict[str, str]:
    """The fields of ``texts`` in ``language`` (the current one by default), each falling back
    to English where it has no translation."""
    english = texts.get(i18n.SOURCE_LANGUAGE, {})
    chosen = texts.get(language or i18n.current(), {})
    return {name: chosen.get(name) or value for name, value in english.items()}


def price_text(price: PriceColumns) -> str:
    """The indicative range as the interface language writes it: ``$800 – $1,800``."""
    low, high, currency = price.price_min, price.price_max, price.currency
    if low is not None and high is not None and low != high:
        return gettext(
            "%(low)s – %(high)s",
            low=i18n.format_money(low, currency),
            high=i18n.format_money(high, currency),
        )
    if low is not None and high is None:
        return gettext("from %(low)s", low=i18n.format_money(low, currency))
    if high is not None and low is None:
        return gettext("up to %(high)s", high=i18n.format_money(high, currency))
    if low is not None:
        return i18n.format_money(low, currency)
    return gettext("price on request")


def price_public(price: PriceColumns) -> PricePublic:
    return PricePublic(
        currency=price.currency,
        min=price.price_min,
        max=price.price_max,
        set_on=price.price_set_on,
        text=price_text(price),
    )


def country_name(code: str) -> str:
    """The country named in the interface language (``Russia``, ``Россия``)."""
    try:
        return str(Locale.parse(i18n.current()).territories.get(code, code))
    except (ValueError, UnknownLocaleError):
        return code


def clinic_public(clinic: Clinic) -> ClinicPublic:
    text = localized(clinic.texts)
    return ClinicPublic(
        slug=clinic.slug,
        name=text.get("name", clinic.slug),
        city=text.get("city", ""),
        country=clinic.country,
        country_name=country_name(clinic.country),
        languages=list(clinic.languages),
        contact=clinic.contact,
        active=clinic.active,
    )


def _offers_of(
    session: Session, options: Sequence[TreatmentOption]
) -> dict[uuid.UUID, list[OfferPublic]]:
    """Each option's offers by active clinics, cheapest first (one query for all options)."""
    found: dict[uuid.UUID, list[OfferPublic]] = {option.id: [] for option in options}
    if not options:
        return found
    rows = session.exec(
        select(ClinicOffer, Clinic)
        .join(Clinic, col(Clinic.id) == col(ClinicOffer.clinic_id))
        .where(col(ClinicOffer.option_id).in_(list(found)), col(Clinic.active).is_(True))
        .order_by(col(ClinicOffer.price_min), col(Clinic.slug))
    ).all()
    for offer, clinic in rows:
        public = clinic_public(clinic)
        found[offer.option_id].append(
            OfferPublic(
                clinic=clinic.slug,
                clinic_name=public.name,
                city=public.city,
                country=public.country_name,
                price=price_public(offer),
            )
        )
    return found


def _option_public(
    option: TreatmentOption, condition_slug: str, offers: list[OfferPublic]
) -> OptionPublic:
    text = localized(option.texts)
    return OptionPublic(
        slug=option.slug,
        condition=condition_slug,
        name=text.get("name", option.slug),
        description=text.get("description", ""),
        price=price_public(option),
        offers=offers,
    )


def read_conditions(
    *, session: Session, page: PageRequest | None = None, with_offers: bool = True
) -> tuple[list[ConditionPublic], str | None]:
    """One page of the guide's conditions (ordered by position and slug), with their options
    and, unless ``with_offers`` is false, the clinics offering each."""
    page = page or PageRequest(limit=pagination.MAX_LIMIT)
    query = pagination.after(
        select(Condition), [col(Condition.position), col(Condition.slug)], page
    )
    conditions, next_cursor = pagination.cut(
        session.exec(query).all(), page, lambda row: (row.position, row.slug)
    )
    ids = [condition.id for condition in conditions]
    options = (
        session.exec(
            select(TreatmentOption)
            .where(col(TreatmentOption.condition_id).in_(ids))
            .order_by(col(TreatmentOption.position), col(TreatmentOption.slug))
        ).all()
        if ids
        else []
    )
    offers = _offers_of(session, options) if with_offers else {}
    described = []
    for condition in conditions:
        text = localized(condition.texts)
        described.append(
            ConditionPublic(
                slug=condition.slug,
                name=text.get("name", condition.slug),
                summary=text.get("summary", ""),
                diagnosis=text.get("diagnosis", ""),
                options=[
                    _option_public(option, condition.slug, offers.get(option.id, []))
                    for option in options
                    if option.condition_id == condition.id
                ],
            )
        )
    return described, next_cursor


def describe_options(*, session: Session, slugs: Sequence[str]) -> list[OptionPublic]:
    """The named options (in the order given, unknown ones left out) with their offers."""
    if not slugs:
        return []
    rows = session.exec(
        select(TreatmentOption, Condition.slug)
        .join(Condition, col(Condition.id) == col(TreatmentOption.condition_id))
        .where(col(TreatmentOption.slug).in_(list(slugs)))
    ).all()
    by_slug = {option.slug: (option, condition) for option, condition in rows}
    offers = _offers_of(session, [option for option, _ in rows])
    return [
        _option_public(by_slug[slug][0], by_slug[slug][1], offers[by_slug[slug][0].id])
        for slug in slugs
        if slug in by_slug
    ]


def known_options(*, session: Session, slugs: Iterable[str]) -> list[str]:
    """``slugs`` without repeats, in the guide's order.

    Raises
    ------
    InvalidInput
        A slug names no option of the guide.
    """
    wanted = set(slugs)
    if not wanted:
        return []
    found = session.exec(
        select(TreatmentOption.slug)
        .join(Condition, col(Condition.id) == col(TreatmentOption.condition_id))
        .where(col(TreatmentOption.slug).in_(wanted))
        .order_by(
            col(Condition.position),
            col(Condition.slug),
            col(TreatmentOption.position),
            col(TreatmentOption.slug),
        )
    ).all()
    unknown = sorted(wanted - set(found))
    if unknown:
        raise InvalidInput(
            gettext(
                "The treatment guide has no option %(options)s; reload the page and choose again.",
                options=", ".join(unknown),
            )
        )
    return list(found)


def clinics_offering(*, session: Session, slugs: Sequence[str]) -> list[ClinicPublic]:
    """Active clinics offering at least one of the options named, by name."""
    if not slugs:
        return []
    offering = (
        select(ClinicOffer.clinic_id)
        .join(TreatmentOption, col(TreatmentOption.id) == col(ClinicOffer.option_id))
        .where(col(TreatmentOption.slug).in_(list(slugs)))
    )
    rows = session.exec(
        select(Clinic).where(col(Clinic.id).in_(offering), col(Clinic.active).is_(True))
    ).all()
    return sorted((clinic_public(row) for row in rows), key=lambda clinic: clinic.name)


def list_clinics(*, session: Session) -> list[Clinic]:
    return list(session.exec(select(Clinic).order_by(col(Clinic.slug))).all())


def clinic_by_slug(session: Session, slug: str) -> Clinic | None:
    return session.exec(select(Clinic).where(Clinic.slug == slug)).first()


def condition_by_slug(session: Session, slug: str) -> Condition | None:
    return session.exec(select(Condition).where(Condition.slug == slug)).first()


def option_by_slug(session: Session, slug: str) -> TreatmentOption | None:
    return session.exec(select(TreatmentOption).where(TreatmentOption.slug == slug)).first()


def offers_of_clinic(
    *, session: Session, clinic: Clinic
) -> list[tuple[ClinicOffer, TreatmentOption]]:
    return list(
        session.exec(
            select(ClinicOffer, TreatmentOption)
            .join(TreatmentOption, col(TreatmentOption.id) == col(ClinicOffer.option_id))
            .where(ClinicOffer.clinic_id == clinic.id)
            .order_by(col(TreatmentOption.slug))
        ).all()
    )


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
    audit_service.record(
        session=session,
        ctx=ctx,
        action=action,
        entity_type="treatment_guide",
        entity_id=slug,
        details={"created": applied.created, "changed": applied.changed},
    )
    try:
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
