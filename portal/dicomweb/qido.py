"""QIDO-RS: search a case's studies, series and instances in its index (PS3.18 10.6).

Matching follows PS3.18 8.3.4 and PS3.4 C.2.2.2: single values, UID lists, ``*``/``?``
wildcards (person names case-insensitively, in any script), date and time ranges, universal
matching (an empty value asks for the attribute back). All of it runs in SQL, paged with
``limit``/``offset``. Keys the index does not hold are ignored with a ``Warning`` header, as
the standard asks, rather than matched wrongly.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal, or_, select
from sqlmodel import Session, col

from portal.db import casefold
from portal.dicomweb.attributes import (
    ATTRIBUTES,
    BY_TAG,
    INSTANCE_AVAILABILITY,
    RETRIEVE_URL,
    Attribute,
    Level,
    element,
    resolve,
    sql_column,
)
from portal.errors import BadRequest
from portal.i18n import _
from portal.intake.models import DicomInstance, DicomSeries, DicomStudy

MAX_RESULTS = 5000
"""Most results one search answers; more are reached with ``offset`` (PS3.18 8.3.4.4)."""
_CONTROL = frozenset({"limit", "offset", "fuzzymatching", "includefield", "accept", "charset"})
_DATE = re.compile(r"\d{8}")
_TIME = re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_EVERY_LEVEL = frozenset({"StudyInstanceUID", "SeriesInstanceUID", "TimezoneOffsetFromUTC"})
"""Returned at every level (the UIDs of the levels above; the time zone of the dates)."""
_WILDCARD_VRS = frozenset({"PN", "LO", "SH", "CS", "LT", "ST", "UT", "UC", "AE"})


@dataclass
class Search:
    """A parsed QIDO-RS request: level, the path's UIDs, matching keys, what to return."""

    level: Level
    study_uid: str | None = None
    series_uid: str | None = None
    matches: list[tuple[Attribute, str]] = field(default_factory=list)
    include: set[str] = field(default_factory=set)
    include_all: bool = False
    limit: int = MAX_RESULTS
    offset: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def levels_returned(self) -> set[Level]:
        """Levels whose attributes all come back: the searched one, and those above it that
        the path does not fix (a relational search, PS3.18 Tables 10.6.3-4 and -5)."""
        levels = {self.level}
        if self.level >= Level.series and self.study_uid is None:
            levels.add(Level.study)
        if self.level == Level.instance and self.series_uid is None:
            levels.add(Level.series)
        return levels


def parse(
    level: Level,
    params: Iterable[tuple[str, str]],
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> Search:
    """Read the query parameters of a search; ``InvalidInput`` (400) names what is wrong."""
    search = Search(level=level, study_uid=study_uid, series_uid=series_uid)
    seen: set[str] = set()
    ignored: list[str] = []
    for key, value in params:
        name = key.strip()
        if name.lower() in _CONTROL:
            _control(search, name.lower(), value)
            continue
        resolved = resolve(name)
        if resolved is None:
            raise BadRequest(_("'%(name)s' is not a DICOM attribute keyword or tag.", name=name))
        tag, keyword = resolved
        if tag in seen:
            raise BadRequest(_("'%(name)s' appears more than once in the query.", name=keyword))
        seen.add(tag)
        attribute = BY_TAG.get(tag)
        if attribute is None or attribute.level > level or not attribute.matchable:
            ignored.append(keyword)
            continue
        if value == "":
            search.include.add(tag)
            continue
        _check_value(attribute, value)
        search.matches.append((attribute, value))
        search.include.add(tag)
    if ignored:
        search.warnings.append(
            "The following attributes are not supported for matching and were ignored: "
            + ", ".join(ignored)
        )
    return search


def _control(search: Search, name: str, value: str) -> None:
    if name in {"limit", "offset"}:
        if not value.isdigit():
            raise BadRequest(
                _("'%(name)s' must be a whole number, not '%(value)s'.", name=name, value=value)
            )
        number = int(value)
        if name == "limit":
            search.limit = min(number, MAX_RESULTS) if number > 0 else MAX_RESULTS
        else:
            search.offset = number
    elif name == "fuzzymatching":
        if value.lower() not in {"true", "false"}:
            raise BadRequest(_("'fuzzymatching' is true or false."))
        if value.lower() == "true":
            search.warnings.append(
                "The fuzzymatching parameter is not supported. Only literal matching has been "
                "performed."
            )
    elif name == "includefield":
        for item in filter(None, (part.strip() for part in value.split(","))):
            if item.lower() == "all":
                search.include_all = True
                continue
            resolved = resolve(item)
            if resolved is None:
                raise BadRequest(_("includefield '%(name)s' is not a DICOM attribute.", name=item))
            search.include.add(resolved[0])


def _check_value(attribute: Attribute, value: str) -> None:
    vr = attribute.vr
    if vr == "UI":
        if not all(_UID.fullmatch(uid) for uid in _uid_list(value)):
            raise BadRequest(
                _("'%(name)s' must be UIDs (digits and dots).", name=attribute.keyword)
            )
    elif vr in {"DA", "TM"}:
        pattern = _DATE if vr == "DA" else _TIME
        low, _dash, high = value.partition("-")
        if not any((low, high)) or not all(pattern.fullmatch(v) for v in (low, high) if v):
            form = "YYYYMMDD" if vr == "DA" else "HHMMSS"
            raise BadRequest(
                _(
                    "'%(name)s' must be a %(form)s value or a range such as %(form)s-%(form)s, "
                    "not '%(value)s'.",
                    name=attribute.keyword,
                    form=form,
                    value=value,
                )
            )
    elif vr in {"IS", "US"} and not value.isdigit():
        raise BadRequest(
            _(
                "'%(name)s' must be a whole number, not '%(value)s'.",
                name=attribute.keyword,
                value=value,
            )
        )
    if len(value) > 1024:
        raise BadRequest(_("The value of '%(name)s' is too long.", name=attribute.keyword))


def _uid_list(value: str) -> list[str]:
    return [uid.strip() for uid in re.split(r"[\\,]", value) if uid.strip()]


# -- SQL ---------------------------------------------------------------------------------------


def _condition(attribute: Attribute, value: str) -> ColumnElement[bool]:
    if attribute.keyword == "ModalitiesInStudy":
        wrapped = literal(",") + col(DicomStudy.modalities) + literal(",")
        return or_(*(wrapped.like(f"%,{_escape(m)},%", escape="\\") for m in value.split("\\")))
    column = attribute.column
    assert column is not None
    vr = attribute.vr
    if vr == "UI":
        return col(column).in_(_uid_list(value))
    if vr in {"IS", "US"}:
        return col(column) == int(value)
    if vr in {"DA", "TM"} and "-" in value:
        low, _dash, high = value.partition("-")
        parts = []
        if low:
            parts.append(col(column) >= low)
        if high:
            parts.append(col(column) <= high + ("" if vr == "DA" else "\uffff"))
        return and_(*parts)
    if vr == "TM":
        return col(column).startswith(value)
    if vr in _WILDCARD_VRS and ("*" in value or "?" in value):
        pattern = _escape(value).replace("*", "%").replace("?", "_")
        if vr == "PN":
            return casefold(col(column)).like(pattern.casefold(), escape="\\")
        return col(column).like(pattern, escape="\\")
    if vr == "PN":
        return casefold(col(column)) == value.casefold()
    return col(column) == value


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _query(case_id: uuid.UUID, search: Search) -> Select[Any]:
    series_count = (
        select(func.count(col(DicomSeries.id)))
        .where(col(DicomSeries.study_id) == col(DicomStudy.id))
        .correlate(DicomStudy)
        .scalar_subquery()
    )
    study_instances = (
        select(func.count(col(DicomInstance.id)))
        .join(DicomSeries, col(DicomSeries.id) == col(DicomInstance.series_id))
        .where(col(DicomSeries.study_id) == col(DicomStudy.id))
        .correlate(DicomStudy)
        .scalar_subquery()
    )
    query: Select[Any]
    if search.level == Level.study:
        query = select(DicomStudy, series_count, study_instances)
        order = [col(DicomStudy.study_date).is_(None), col(DicomStudy.study_date)]
        order += [col(DicomStudy.study_time), col(DicomStudy.study_instance_uid)]
    else:
        series_instances = (
            select(func.count(col(DicomInstance.id)))
            .where(col(DicomInstance.series_id) == col(DicomSeries.id))
            .correlate(DicomSeries)
            .scalar_subquery()
        )
        query = select(DicomStudy, series_count, study_instances, DicomSeries, series_instances)
        query = query.join(DicomSeries, col(DicomSeries.study_id) == col(DicomStudy.id))
        order = [
            sql_column(DicomSeries.series_number).is_(None),
            sql_column(DicomSeries.series_number),
        ]
        order += [col(DicomSeries.series_instance_uid)]
        if search.level == Level.instance:
            query = query.add_columns(DicomInstance).join(
                DicomInstance, col(DicomInstance.series_id) == col(DicomSeries.id)
            )
            order += [sql_column(DicomInstance.instance_number).is_(None)]
            order += [
                sql_column(DicomInstance.instance_number),
                col(DicomInstance.sop_instance_uid),
            ]
    query = query.where(col(DicomStudy.case_id) == case_id)
    if search.study_uid is not None:
        query = query.where(col(DicomStudy.study_instance_uid) == search.study_uid)
    if search.series_uid is not None:
        query = query.where(col(DicomSeries.series_instance_uid) == search.series_uid)
    for attribute, value in search.matches:
        query = query.where(_condition(attribute, value))
    return query.order_by(*order).offset(search.offset).limit(search.limit + 1)


# -- answers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """The DICOM JSON objects found, and the warnings for the ``Warning`` header."""

    items: list[dict[str, Any]]
    warnings: list[str]


def run(*, session: Session, case_id: uuid.UUID, search: Search, base_url: str) -> Found:
    """Run a parsed search over the case's index; ``base_url`` is the case's DICOMweb root."""
    rows: Sequence[Any] = session.execute(_query(case_id, search)).all()
    warnings = list(search.warnings)
    if len(rows) > search.limit:
        rows = rows[: search.limit]
        warnings.append("There are additional results that can be requested.")
    return Found([_answer(row, search, base_url) for row in rows], warnings)


def _answer(row: Any, search: Search, base_url: str) -> dict[str, Any]:
    study: DicomStudy = row[0]
    values: dict[str, Any] = {
        "NumberOfStudyRelatedSeries": row[1],
        "NumberOfStudyRelatedInstances": row[2],
        "ModalitiesInStudy": [m for m in study.modalities.split(",") if m],
    }
    rows: dict[Level, Any] = {Level.study: study}
    url = f"{base_url}/studies/{study.study_instance_uid}"
    if search.level >= Level.series:
        rows[Level.series] = row[3]
        values["NumberOfSeriesRelatedInstances"] = row[4]
        url += f"/series/{row[3].series_instance_uid}"
    if search.level == Level.instance:
        rows[Level.instance] = row[5]
        url += f"/instances/{row[5].sop_instance_uid}"
    answer: dict[str, Any] = {}
    for attribute in ATTRIBUTES:
        if not _returned(attribute, search):
            continue
        if attribute.column is not None:
            value = getattr(rows[attribute.level], attribute.column.key)
        else:
            value = values.get(attribute.keyword)
        if attribute.keyword == "NumberOfFrames" and not rows[Level.instance].frames_declared:
            continue  # as in the file: a single-frame image that does not state it
        answer[attribute.tag] = element(attribute, value)
    answer[INSTANCE_AVAILABILITY.tag] = element(INSTANCE_AVAILABILITY, "ONLINE")
    answer[RETRIEVE_URL.tag] = element(RETRIEVE_URL, url)
    return dict(sorted(answer.items()))


def _returned(attribute: Attribute, search: Search) -> bool:
    """The level's own attributes, the UIDs above it, and whatever was matched or asked for."""
    if attribute.level > search.level:
        return False
    if attribute.level in search.levels_returned or search.include_all:
        return True
    return attribute.tag in search.include or attribute.keyword in _EVERY_LEVEL
