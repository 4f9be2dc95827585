"""Small FHIR data types the builders share: codings, identifiers, references, narrative."""

from __future__ import annotations

import html
import uuid

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.narrative import Narrative
from fhir.resources.R4B.reference import Reference

from reviewers.fhir.codes import URI

Code = tuple[str, str, str]
"""(system, code, display)."""

NAMESPACE = uuid.UUID("3b4af845-53f1-4bbe-8c5e-89dbfedc6117")
"""Resource ids are UUIDv5 in this namespace, from what the resource stands for: the same
opinion exports with the same ids every time."""

XHTML = "http://www.w3.org/1999/xhtml"


def resource_id(resource_type: str, key: object) -> str:
    """The stable id of the ``resource_type`` resource made from ``key`` (a row id)."""
    return str(uuid.uuid5(NAMESPACE, f"{resource_type}/{key}"))


def full_url(resource_id: str) -> str:
    return f"urn:uuid:{resource_id}"


def ref(resource_type: str, key: object, display: str | None = None) -> Reference:
    """A reference to a resource of this bundle, by its ``fullUrl``."""
    return Reference(reference=full_url(resource_id(resource_type, key)), display=display)


def coding(code: Code) -> Coding:
    system, value, display = code
    return Coding(system=system, code=value, display=display)


def concept(code: Code | None = None, text: str | None = None) -> CodeableConcept:
    return CodeableConcept(coding=[coding(code)] if code else None, text=text)


def uuid_identifier(value: uuid.UUID) -> Identifier:
    """An identifier that is the portal's id of a row, as a ``urn:uuid`` URI."""
    return Identifier(system=URI, value=f"urn:uuid:{value}")


def narrative(*blocks: tuple[str | None, str]) -> Narrative:
    """XHTML narrative of (heading or None, text) blocks: text escaped, one paragraph a line
    break in the text, blank lines dropped."""
    parts: list[str] = []
    for heading, text in blocks:
        if heading:
            parts.append(f"<p><b>{html.escape(heading)}</b></p>")
        parts.extend(
            f"<p>{html.escape(line.strip())}</p>" for line in text.splitlines() if line.strip()
        )
    return Narrative(status="generated", div=f'<div xmlns="{XHTML}">{"".join(parts)}</div>')


def has_text(*texts: str | None) -> bool:
    return any(text and text.strip() for text in texts)
