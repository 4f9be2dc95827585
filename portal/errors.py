"""Domain exceptions. Services raise these; one handler in ``portal.app`` maps them to HTTP.

Each carries a message written for the person on the other end, never internal detail.
"""

from typing import Any

from portal.i18n import N_, format_number, gettext, ngettext


class PortalError(Exception):
    """Base of every error a caller is meant to see."""

    default_message = N_("The request could not be completed.")

    def __init__(self, message: str | None = None) -> None:
        self.message = gettext(message or self.default_message)
        super().__init__(self.message)


class InvalidInput(PortalError):
    default_message = N_("The request is not valid.")


class NotAuthenticated(PortalError):
    default_message = N_("Sign in to continue.")


class Forbidden(PortalError):
    default_message = N_("You are not allowed to do this.")


class NotFound(PortalError):
    default_message = N_("Not found.")


class Conflict(PortalError):
    default_message = N_("This conflicts with the current state.")


class PayloadTooLarge(PortalError):
    default_message = N_("The request is too large.")


class TooManyRequests(PortalError):
    default_message = N_("Too many attempts. Try again later.")

    def __init__(self, message: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(PortalError):
    default_message = N_("The service is temporarily unavailable.")


class Gone(PortalError):
    default_message = N_("This no longer exists.")


class RequestTimeout(PortalError):
    """The client stopped sending the request body (an upload that stalled)."""

    default_message = N_("The upload stopped arriving; nothing of it was kept. Send it again.")


class UnsupportedMediaType(PortalError):
    default_message = N_("The request body has the wrong content type.")


class NotAcceptable(PortalError):
    default_message = N_("None of the media types in the Accept header can be given.")


class BadRequest(PortalError):
    """Malformed in its syntax (a query, a frame list), as opposed to invalid data (422)."""

    default_message = N_("The request is not well-formed.")


class PreconditionFailed(PortalError):
    default_message = N_("A precondition of the request does not hold.")


class ChecksumMismatch(PortalError):
    """tus checksum extension: the received bytes do not match the client's checksum (460)."""

    default_message = N_("The received data does not match its checksum; send it again.")


HTTP_STATUS: list[tuple[type[PortalError], int]] = [
    (InvalidInput, 422),
    (BadRequest, 400),
    (NotAuthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (NotAcceptable, 406),
    (RequestTimeout, 408),
    (Conflict, 409),
    (Gone, 410),
    (PreconditionFailed, 412),
    (UnsupportedMediaType, 415),
    (ChecksumMismatch, 460),
    (PayloadTooLarge, 413),
    (TooManyRequests, 429),
    (ServiceUnavailable, 503),
]


def http_status(exc: PortalError) -> int:
    """The HTTP status a domain error answers with."""
    return next((code for kind, code in HTTP_STATUS if isinstance(exc, kind)), 400)


def describe_validation_errors(errors: Any) -> str:
    """Pydantic's error list as one sentence a person can read, in the caller's language.

    The common error types are worded here by their ``type`` (with the field's name); any
    other keeps pydantic's English text. Input values are never echoed.
    """
    parts = []
    for error in errors:
        if error.get("type") == "json_invalid":
            return gettext("The request body is not valid JSON.")
        parts.append(_describe_one(error))
    return "; ".join(parts) or gettext("The request is not valid.")


_PROBLEMS: dict[str, str] = {
    "missing": N_("%(field)s is required"),
    "string_type": N_("%(field)s must be text"),
    "string_pattern_mismatch": N_("%(field)s is not in the expected form"),
    "int_parsing": N_("%(field)s must be a whole number"),
    "int_type": N_("%(field)s must be a whole number"),
    "int_from_float": N_("%(field)s must be a whole number"),
    "float_parsing": N_("%(field)s must be a number"),
    "float_type": N_("%(field)s must be a number"),
    "finite_number": N_("%(field)s must be a number"),
    "bool_parsing": N_("%(field)s must be true or false"),
    "bool_type": N_("%(field)s must be true or false"),
    "uuid_parsing": N_("%(field)s must be an identifier (UUID)"),
    "uuid_type": N_("%(field)s must be an identifier (UUID)"),
    "date_parsing": N_("%(field)s must be a date (YYYY-MM-DD)"),
    "date_type": N_("%(field)s must be a date (YYYY-MM-DD)"),
    "date_from_datetime_parsing": N_("%(field)s must be a date (YYYY-MM-DD)"),
    "date_from_datetime_inexact": N_("%(field)s must be a date (YYYY-MM-DD) without a time"),
    "datetime_parsing": N_("%(field)s must be a date and time (ISO 8601)"),
    "datetime_type": N_("%(field)s must be a date and time (ISO 8601)"),
    "datetime_from_date_parsing": N_("%(field)s must be a date and time (ISO 8601)"),
    "enum": N_("%(field)s must be one of: %(choices)s"),
    "literal_error": N_("%(field)s must be one of: %(choices)s"),
    "greater_than_equal": N_("%(field)s must be at least %(limit)s"),
    "greater_than": N_("%(field)s must be more than %(limit)s"),
    "less_than_equal": N_("%(field)s must be at most %(limit)s"),
    "less_than": N_("%(field)s must be less than %(limit)s"),
    "list_type": N_("%(field)s must be a list"),
    "dict_type": N_("%(field)s must be an object"),
    "model_type": N_("%(field)s must be an object"),
    "model_attributes_type": N_("%(field)s must be an object"),
    "extra_forbidden": N_("%(field)s is not a field this request takes"),
    "url_parsing": N_("%(field)s must be a web address"),
    "url_type": N_("%(field)s must be a web address"),
}
_LIMITS = ("ge", "gt", "le", "lt")


def _describe_one(error: Any) -> str:
    location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
    field = ".".join(location) or gettext("request")
    kind = error.get("type")
    ctx = error.get("ctx") or {}
    if kind in ("string_too_short", "too_short"):
        return _length(field, kind, ctx.get("min_length"), at_least=True)
    if kind in ("string_too_long", "too_long"):
        return _length(field, kind, ctx.get("max_length"), at_least=False)
    if kind in ("value_error", "assertion_error"):
        if "reason" in ctx and "error" not in ctx:  # pydantic's e-mail address check
            return gettext("%(field)s: not a valid e-mail address", field=field)
        if "error" in ctx:
            return gettext(
                "%(field)s: %(problem)s", field=field, problem=gettext(str(ctx["error"]))
            )
    wording = _PROBLEMS.get(kind or "")
    if wording is None:
        problem = error.get("msg") or gettext("is not valid")
        return gettext("%(field)s: %(problem)s", field=field, problem=problem)
    limit = next((ctx[name] for name in _LIMITS if name in ctx), "")
    choices = str(ctx.get("expected", "")).replace(" or ", ", ")
    return gettext(
        wording,
        field=field,
        limit=format_number(limit) if isinstance(limit, int | float) else limit,
        choices=choices,
    )


def _length(field: str, kind: str, count: object, *, at_least: bool) -> str:
    if not isinstance(count, int):
        return gettext("%(field)s has the wrong length", field=field)
    if kind.startswith("string"):
        if at_least:
            return ngettext(
                "%(field)s must be at least %(num)s character long",
                "%(field)s must be at least %(num)s characters long",
                count,
                field=field,
            )
        return ngettext(
            "%(field)s must be at most %(num)s character long",
            "%(field)s must be at most %(num)s characters long",
            count,
            field=field,
        )
    if at_least:
        return ngettext(
            "%(field)s must have at least %(num)s item",
            "%(field)s must have at least %(num)s items",
            count,
            field=field,
        )
    return ngettext(
        "%(field)s must have at most %(num)s item",
        "%(field)s must have at most %(num)s items",
        count,
        field=field,
    )
