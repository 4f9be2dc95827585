"""Domain exceptions. Services raise these; one handler in ``portal.app`` maps them to HTTP.

Each carries a message written for the person on the other end, never internal detail.
"""

from typing import Any

from portal.i18n import N_, gettext


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
    """Pydantic's error list as one sentence a person can read; input values are never echoed."""
    parts = []
    for error in errors:
        location = [
            str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")
        ]
        field = ".".join(location) or "request"
        if error.get("type") == "json_invalid":
            return "The request body is not valid JSON."
        if error.get("type") == "missing":
            parts.append(f"{field} is required")
        else:
            parts.append(f"{field}: {error.get('msg', 'is not valid')}")
    return "; ".join(parts) or "The request is not valid."
