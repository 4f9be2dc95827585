"""The OpenAPI document, made to say what the API really does (checked by schemathesis).

FastAPI describes the happy path and a validation error of its own shape. Here, once, for every
route: each error answers ``{"detail": str}`` (:class:`ErrorBody`), and the statuses a route can
answer are derived from what it depends on (a signed-in caller can get 401 and 403, a paged list
400 for a cursor it did not give out, a path with ids 404 and 422, a body 413 and 422) plus the
few a route adds itself (:data:`EXTRA_STATUSES`).
Bodies and answers that are not JSON (multipart uploads, tus, DICOMweb's multipart/related,
images, PDFs) are described as they travel (:data:`MEDIA`). Routes may still declare their own
``responses=``; what they declare is kept. See docs/api.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from portal.deps import authenticate, page_request
from portal.dicomweb.deps import dicomweb_caller

JSONDict = dict[str, Any]


class ErrorBody(BaseModel):
    """Every error the API answers (4xx, and 5xx when something failed on our side)."""

    detail: str = Field(description="One sentence for the person on the other end.")


REASONS: dict[int, str] = {
    400: "The request is not well-formed (a query, a frame list, a multipart body, a cursor).",
    401: "Not signed in, or the token or session has ended.",
    403: "Signed in, but not allowed to do this (or the session may only set up 2FA).",
    404: "No such case or item, or one the caller may not see (indistinguishable).",
    406: "None of the media types in the Accept header can be given.",
    409: "Not possible in the case's or the item's present state.",
    410: "The item has expired.",
    412: "A required protocol header is missing or wrong.",
    413: "The request body is larger than allowed here.",
    415: "The request body has a media type (or content) that is not accepted here.",
    422: "The request is not valid; the detail names the field and the rule.",
    429: "Too many attempts; wait for Retry-After seconds.",
    460: "The received bytes do not match the Upload-Checksum (tus checksum extension).",
    503: "A component the answer needs (database, object storage, keys) is unavailable.",
}

AUTHENTICATES: tuple[Callable[..., Any], ...] = (authenticate, dicomweb_caller)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DICOMWEB = "/api/cases/{case_id}/dicomweb"
TUS = "/api/uploads"
CASE = "/api/cases/{case_id}"


def _binary(media_type: str) -> JSONDict:
    return {media_type: {"schema": {"type": "string", "format": "binary"}}}


def _header(description: str, schema: JSONDict | None = None, *, required: bool = True) -> JSONDict:
    return {
        "description": description,
        "required": required,
        "schema": schema or {"type": "string"},
    }


def _header_param(name: str, description: str, schema: JSONDict, *, required: bool) -> JSONDict:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": schema,
    }


WHOLE = {"type": "string", "pattern": "^[0-9]+$"}
TUS_RESUMABLE = _header_param(
    "Tus-Resumable",
    "The tus protocol version.",
    {"type": "string", "enum": ["1.0.0"]},
    required=True,
)
TUS_ANSWER_HEADERS = {"Tus-Resumable": _header("The tus protocol version: 1.0.0.")}
UPLOAD_STATE_HEADERS = {
    **TUS_ANSWER_HEADERS,
    "Upload-Offset": _header("Bytes received so far.", WHOLE),
    "Upload-Length": _header("The upload's whole length in bytes.", WHOLE),
    "Upload-Expires": _header("When an unfinished upload is discarded (RFC 9110 date)."),
}


@dataclass(frozen=True)
class Contract:
    """What one operation adds to the derived description."""

    errors: tuple[int, ...] = ()
    success: JSONDict | None = None
    """The success answer's ``content`` (media type → schema), replacing FastAPI's."""
    success_headers: JSONDict = field(default_factory=dict)
    request_body: JSONDict | None = None
    parameters: tuple[JSONDict, ...] = ()
    status: int | None = None
    """The success status, when it differs from the route's declared one."""
    drop_errors: tuple[int, ...] = ()
    """Derived statuses this route cannot answer."""


DICOM_JSON = {"application/dicom+json": {"schema": {"type": "array", "items": {"type": "object"}}}}
MULTIPART_DICOM = _binary("multipart/related")
IMAGE = {**_binary("image/png"), **_binary("image/jpeg")}
FHIR_JSON = {
    media_type: {"schema": {"type": "object", "description": "A FHIR R4 Bundle (docs/fhir.md)."}}
    for media_type in ("application/fhir+json", "application/json")
}
QIDO = Contract(errors=(400, 406), success=DICOM_JSON)
WADO = Contract(errors=(400, 406), success=MULTIPART_DICOM)
STOW = Contract(
    errors=(400, 409, 413, 415),
    success={"application/dicom+json": {"schema": {"type": "object"}}},
    request_body={
        "required": True,
        "content": _binary("multipart/related"),
        "description": 'multipart/related; type="application/dicom": one DICOM instance a part.',
    },
)
RENDERED = Contract(errors=(400, 406, 415), success=IMAGE)

_DICOMWEB_CONTRACTS: dict[str, Contract] = {
    "/studies": QIDO,
    "/series": QIDO,
    "/instances": QIDO,
    "/studies/{study}/series": QIDO,
    "/studies/{study}/instances": QIDO,
    "/studies/{study}/series/{series}/instances": QIDO,
    "/studies/{study}": WADO,
    "/studies/{study}/series/{series}": WADO,
    "/studies/{study}/series/{series}/instances/{instance}": WADO,
    "/studies/{study}/metadata": QIDO,
    "/studies/{study}/series/{series}/metadata": QIDO,
    "/studies/{study}/series/{series}/instances/{instance}/metadata": QIDO,
    "/studies/{study}/series/{series}/instances/{instance}/frames/{frame_list}": WADO,
    "/studies/{study}/series/{series}/instances/{instance}/bulkdata/{tag}": Contract(
        errors=(400, 406), success={**MULTIPART_DICOM, **_binary("application/octet-stream")}
    ),
    "/studies/{study}/series/{series}/instances/{instance}/rendered": RENDERED,
    "/studies/{study}/series/{series}/instances/{instance}/frames/{frame_list}/rendered": RENDERED,
    "/studies/{study}/series/{series}/instances/{instance}/thumbnail": RENDERED,
    "/studies/{study}/series/{series}/thumbnail": RENDERED,
}

CONTRACTS: dict[tuple[str, str], Contract] = {
    **{("GET", DICOMWEB + path): contract for path, contract in _DICOMWEB_CONTRACTS.items()},
    ("POST", DICOMWEB + "/studies"): STOW,
    ("POST", DICOMWEB + "/studies/{study}"): STOW,
    ("GET", "/readyz"): Contract(errors=(503,)),
    ("POST", "/api/auth/login"): Contract(errors=(401, 429)),
    ("POST", "/api/auth/register"): Contract(errors=(409,)),
    ("POST", "/api/auth/password-reset/confirm"): Contract(errors=(410,)),
    ("POST", "/api/auth/totp/enroll"): Contract(errors=(409, 429)),
    ("POST", "/api/auth/totp/confirm"): Contract(errors=(409, 429)),
    ("POST", "/api/auth/totp/disable"): Contract(errors=(409, 429)),
    ("POST", CASE + "/break-glass"): Contract(drop_errors=(409,)),
    ("DELETE", CASE + "/dicomweb-tokens/{token_id}"): Contract(drop_errors=(409,)),
    ("DELETE", CASE + "/share-links/{link_id}"): Contract(drop_errors=(409,)),
    ("POST", CASE + "/files"): Contract(
        errors=(400, 409, 413, 415),
        request_body={
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["files"],
                        "properties": {
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "description": "One or many files: DICOM, ZIP, PDF, JPEG, PNG.",
                            }
                        },
                    }
                }
            },
        },
    ),
    ("GET", CASE + "/files/{file_id}/content"): Contract(
        success={
            **_binary("application/dicom"),
            **_binary("application/pdf"),
            **IMAGE,
            **_binary("application/octet-stream"),
        },
        success_headers={
            "Content-Disposition": _header("attachment, with the original file name."),
            "X-Content-SHA256": _header("SHA-256 of the bytes, hex.", {"type": "string"}),
        },
    ),
    ("GET", CASE + "/opinion.pdf"): Contract(errors=(409,), success=_binary("application/pdf")),
    ("GET", CASE + "/fhir"): Contract(errors=(406, 409), success=FHIR_JSON),
    ("GET", "/api/audit/fhir"): Contract(errors=(406,), success=FHIR_JSON),
    ("OPTIONS", TUS): Contract(
        status=204,
        success_headers={
            **TUS_ANSWER_HEADERS,
            "Tus-Version": _header("Protocol versions the server speaks."),
            "Tus-Extension": _header("The tus extensions supported."),
            "Tus-Max-Size": _header("The largest upload accepted, in bytes.", WHOLE),
            "Tus-Checksum-Algorithm": _header("Algorithms for Upload-Checksum."),
        },
        drop_errors=(401, 403),
    ),
    ("POST", TUS): Contract(
        errors=(400, 404, 409, 412, 413, 415, 460),
        parameters=(
            TUS_RESUMABLE,
            _header_param("Upload-Length", "The file's length in bytes.", WHOLE, required=True),
            _header_param(
                "Upload-Metadata",
                "Comma-separated `key base64(value)` pairs; `case_id` and `filename` required.",
                {"type": "string"},
                required=True,
            ),
            _header_param(
                "Upload-Checksum",
                "`sha1 base64(digest)` of a body sent with the creation (creation-with-upload).",
                {"type": "string"},
                required=False,
            ),
        ),
        request_body={
            "required": False,
            "content": _binary("application/offset+octet-stream"),
            "description": "Creation-with-upload: the first bytes (or the whole file).",
        },
        success_headers={
            **UPLOAD_STATE_HEADERS,
            "Location": _header("The upload's URL, for HEAD, PATCH and DELETE."),
        },
    ),
    ("HEAD", TUS + "/{upload_id}"): Contract(
        errors=(410, 412), success_headers=UPLOAD_STATE_HEADERS, parameters=(TUS_RESUMABLE,)
    ),
    ("PATCH", TUS + "/{upload_id}"): Contract(
        status=204,
        errors=(400, 409, 410, 412, 413, 415, 460),
        parameters=(
            TUS_RESUMABLE,
            _header_param("Upload-Offset", "Where these bytes start.", WHOLE, required=True),
            _header_param(
                "Upload-Checksum", "`sha1 base64(digest)` of the body.", {}, required=False
            ),
        ),
        request_body={
            "required": True,
            "content": _binary("application/offset+octet-stream"),
            "description": "The next bytes of the file, from Upload-Offset.",
        },
        success_headers=UPLOAD_STATE_HEADERS,
    ),
    ("DELETE", TUS + "/{upload_id}"): Contract(
        errors=(412,), success_headers=TUS_ANSWER_HEADERS, parameters=(TUS_RESUMABLE,)
    ),
}


def install(app: FastAPI) -> None:
    """Have ``app`` serve the corrected document (built once, on first request)."""

    def openapi() -> JSONDict:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build(app: FastAPI) -> JSONDict:
    """The OpenAPI document of ``app``'s JSON API, errors and media types included."""
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    for path in [path for path in document["paths"] if not _is_api(path)]:
        del document["paths"][path]  # pages post forms; they are not part of the API
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    for route in _api_routes(app.routes):
        for method in sorted(route.methods or ()):
            operation = document["paths"][route.path_format][method.lower()]
            _describe(operation, route, method, CONTRACTS.get((method, route.path_format)))
    return document


def _api_routes(routes: Any) -> Iterator[APIRoute]:
    """Every API route, also inside included routers (FastAPI may keep them nested)."""
    for route in routes:
        if isinstance(route, APIRoute):
            if route.include_in_schema and _is_api(route.path_format):
                yield route
        elif (inner := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(inner.routes)


def _is_api(path: str) -> bool:
    return path.startswith("/api/") or path in {"/healthz", "/readyz"}


def _describe(operation: JSONDict, route: APIRoute, method: str, contract: Contract | None) -> None:
    contract = contract or Contract()
    responses: JSONDict = operation.setdefault("responses", {})
    declared = str(route.status_code or 200)
    if contract.status is not None and str(contract.status) != declared:
        responses[str(contract.status)] = responses.pop(declared, {"description": "Done."})
        declared = str(contract.status)
    success = responses.setdefault(declared, {"description": "Done."})
    if contract.success is not None:
        success["content"] = contract.success
    elif success.get("content") == {"application/json": {"schema": {}}}:
        success.pop("content")  # a bare Response: nothing to promise about its body
    if contract.success_headers:
        success["headers"] = contract.success_headers
    if contract.request_body is not None:
        operation["requestBody"] = contract.request_body
    if contract.parameters:
        operation["parameters"] = [*operation.get("parameters", []), *contract.parameters]
    statuses = (_derived(route, method, operation) | set(contract.errors)) - set(
        contract.drop_errors
    )
    responses.pop("422", None)  # FastAPI's own shape; ours follows when it can occur
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": REASONS[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        }


def _derived(route: APIRoute, method: str, operation: JSONDict) -> set[int]:
    """The error statuses that follow from how the route is built."""
    statuses: set[int] = set()
    if _depends_on(route.dependant, AUTHENTICATES):
        statuses |= {401, 403}
    if _depends_on(route.dependant, (page_request,)):
        statuses.add(400)  # a cursor this list did not give out
    parameters = operation.get("parameters", [])
    if any(parameter["in"] == "path" for parameter in parameters):
        statuses |= {404, 422}
    if any(parameter["in"] in {"query", "header", "cookie"} for parameter in parameters):
        statuses.add(422)
    if method not in SAFE_METHODS and route.path_format.startswith(CASE + "/"):
        statuses.add(409)  # a case's state decides what may happen to it now
    if "requestBody" in operation:
        statuses |= {413, 422}
    elif method in BODY_METHODS:
        statuses.add(413)  # any body is measured before the route sees it
    return statuses


def _depends_on(dependant: Dependant, calls: tuple[Callable[..., Any], ...]) -> bool:
    return dependant.call in calls or any(_depends_on(sub, calls) for sub in dependant.dependencies)
