"""The treatment guide as everyone signed in reads it: conditions, their treatment options with
indicative prices, clinics and what they offer, in the interface's language (English where a
text has no translation). Coordinators edit it through ``reviewers.treatment.editor``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from babel import Locale, UnknownLocaleError
from sqlmodel import Session, col, select

from portal import i18n, pagination
from portal.errors import InvalidInput
from portal.i18n import gettext
from portal.pagination import PageRequest
from reviewers.treatment.models import (
    Clinic,
    ClinicOffer,
    ClinicPublic,
    Condition,
    ConditionPublic,
    LanguageTexts,
    OfferPublic,
    OptionPublic,
    PriceColumns,
    PricePublic,
    TreatmentOption,
)

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
                options=", ".join(unknown[:3]),
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
