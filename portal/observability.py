"""Structured JSON logs with a request id, and the guard that keeps secrets out of them.

Rules: log events and identifiers, never values. No names, e-mail addresses, tokens, passwords,
DICOM attributes or free text a person typed. Exception *messages* are not logged either — they
can quote user input — only the exception type and the frames.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


def new_request_id(incoming: str | None) -> str:
    """Keep a well-formed incoming id (for tracing through a proxy), otherwise make one."""
    if incoming and _REQUEST_ID.match(incoming):
        return incoming
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _exc, tb = record.exc_info
            entry["exc_type"] = exc_type.__name__
            entry["stack"] = [
                f"{frame.filename}:{frame.lineno} in {frame.name}"
                for frame in traceback.extract_tb(tb)
            ]
        return json.dumps(entry, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """Human-readable lines for a terminal, with the same no-values rule."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        request_id = request_id_var.get()
        rid = f" [{request_id[:8]}]" if request_id else ""
        line = f"{stamp} {record.levelname:<7} {record.name}{rid}: {record.getMessage()}"
        if record.exc_info and record.exc_info[0] is not None:
            line += f" ({record.exc_info[0].__name__})"
        return line


def configure_logging(*, level: str = "INFO", log_format: str = "auto") -> None:
    """Route every logger (ours, uvicorn's, SQLAlchemy's) through one formatter on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    plain = log_format == "plain" or (log_format == "auto" and sys.stderr.isatty())
    handler.setFormatter(PlainFormatter() if plain else JsonFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_portal_handler", False):
            root.removeHandler(existing)
    handler._portal_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Never DEBUG for these: SQLAlchemy and botocore log parameter values and headers there.
    # pydicom's warnings can quote element values (names, IDs): only errors, never values.
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    for noisy in (
        "sqlalchemy",
        "botocore",
        "boto3",
        "urllib3",
        "s3transfer",
        "alembic",
        "fontTools",
        "fpdf",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").disabled = True  # ours logs the route template instead
