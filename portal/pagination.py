"""Keyset pagination: one page of a list, and the opaque cursor that continues it.

Every list the API and the pages show is sorted on a key that ends in a unique column (an id
or a sequence number), so the order is total and stable. A page asks for the rows strictly
after the last key it showed: the database walks an index from there, however deep the page,
and rows written meanwhile neither repeat nor shift the ones that follow (see docs/api.md).

The cursor is that last key, as urlsafe base64 of a JSON array. It is opaque to clients but
not secret: it holds only what the row already shows (a time, an id, a name).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, TypeDecorator, tuple_

from portal.errors import BadRequest
from portal.i18n import N_

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR_LENGTH = 512
MAX_INT_KEY = 2**63 - 1
"""Integer keys are append ids held in BIGINT columns; a larger one is no position."""

KeyPart = datetime | uuid.UUID | int | str
T = TypeVar("T")
Row = TypeVar("Row")
Query = TypeVar("Query", bound=Select[*tuple[Any, ...]])

BAD_CURSOR = N_(
    "The cursor is not one this list gave out (it may belong to another list or be cut short): "
    "start again from the first page, without a cursor."
)


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    next: str | None = Field(
        description="Pass as `cursor` for the following page; null on the last page."
    )


@dataclass(frozen=True)
class PageRequest:
    """What the caller asked for: at most ``limit`` rows after ``cursor`` (None: the first)."""

    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


def encode_cursor(key: Sequence[KeyPart]) -> str:
    """The opaque cursor for the position after ``key``."""
    plain = [part.isoformat() if isinstance(part, datetime) else part for part in key]
    text = json.dumps([str(part) if isinstance(part, uuid.UUID) else part for part in plain])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: Sequence[type]) -> tuple[KeyPart, ...]:
    """The key a cursor holds, each part parsed as the kind the list sorts on.

    Raises
    ------
    BadRequest
        The cursor is not base64 of a JSON array of that many parts of those kinds.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw.decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadRequest(BAD_CURSOR) from None
    if not isinstance(values, list) or len(values) != len(kinds):
        raise BadRequest(BAD_CURSOR)
    return tuple(_parse(value, kind) for value, kind in zip(values, kinds, strict=True))


def _parse(value: Any, kind: type) -> KeyPart:
    try:
        if kind is datetime and isinstance(value, str):
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is not None:
                return moment.astimezone(UTC)
        elif kind is uuid.UUID and isinstance(value, str):
            return uuid.UUID(value)
        elif kind is int and type(value) is int:
            if 0 <= value <= MAX_INT_KEY:
                return value
        elif kind is str and isinstance(value, str):
            return value
    except ValueError:
        pass
    raise BadRequest(BAD_CURSOR)


def after(
    query: Query,
    columns: Sequence[Any],
    page: PageRequest,
    *,
    descending: bool = False,
) -> Query:
    """``query`` ordered on ``columns`` (mapped columns, the last one unique) and limited to
    the rows after the page's cursor.

    One more row than the page holds is fetched: it tells whether a next page exists.
    """
    if page.cursor is not None:
        kinds = [_kind(column) for column in columns]
        key = decode_cursor(page.cursor, kinds)
        position = tuple_(*columns) < key if descending else tuple_(*columns) > key
        query = query.where(position)
    order = [column.desc() if descending else column.asc() for column in columns]
    return query.order_by(*order).limit(page.limit + 1)


def _kind(column: ColumnElement[Any]) -> type:
    sql_type = column.type
    if isinstance(sql_type, TypeDecorator):
        sql_type = sql_type.impl_instance
    kind: type = sql_type.python_type
    return kind


def cut(
    rows: Sequence[Row], page: PageRequest, key: Callable[[Row], Sequence[KeyPart]]
) -> tuple[list[Row], str | None]:
    """The page's rows and the cursor after its last one (None when nothing follows)."""
    items = list(rows[: page.limit])
    more = len(rows) > page.limit
    return items, (encode_cursor(key(items[-1])) if more and items else None)
