"""The opinion itself: the signed report with its PDF, and the provenance of its signature."""

from __future__ import annotations

import base64
import hashlib

from fhir.resources.R4B.attachment import Attachment
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.provenance import Provenance, ProvenanceAgent, ProvenanceEntity
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.signature import Signature

from reviewers.fhir import codes
from reviewers.fhir.codes import local_system
from reviewers.fhir.elements import coding, concept, ref, resource_id, uuid_identifier
from reviewers.fhir.models import OpinionExport
from reviewers.opinions import CANONICAL_FORMAT

SIGNED_FORMAT = "application/json"
"""What the signature covers: the opinion's canonical JSON (``reviewers.opinions``)."""


def pdf_attachment(export: OpinionExport) -> Attachment:
    """The PDF the patient downloads, embedded so the document stands alone. ``hash`` is the
    SHA-1 FHIR defines for it (an integrity check of these bytes; the signature's SHA-256 is
    in the Provenance)."""
    return Attachment(
        contentType="application/pdf",
        language=export.case.language,
        data=base64.b64encode(export.pdf),
        size=len(export.pdf),
        hash=base64.b64encode(hashlib.sha1(export.pdf, usedforsecurity=False).digest()),
        title=f"second-opinion-{export.case.reference}.pdf",
        creation=export.signed_at,
    )


def diagnostic_report(export: OpinionExport) -> DiagnosticReport:
    """The signed opinion: ``final``, or ``appended`` once addenda follow it."""
    signer = ref("Practitioner", export.signer.id, export.signer.full_name)
    return DiagnosticReport(
        id=resource_id("DiagnosticReport", export.opinion_id),
        identifier=[uuid_identifier(export.opinion_id)],
        basedOn=[ref("ServiceRequest", export.case.id)],
        status="appended" if export.amended else "final",
        category=[concept(codes.RADIOLOGY_SECTION)],
        code=concept(codes.REPORT_TYPE),
        subject=ref("Patient", export.patient.id),
        effectiveDateTime=export.signed_at,
        issued=export.signed_at,
        performer=[signer],
        resultsInterpreter=[signer],
        imagingStudy=[ref("ImagingStudy", study.id) for study in export.studies] or None,
        conclusion=export.document.impression or None,
        presentedForm=[pdf_attachment(export)],
    )


def provenance(export: OpinionExport, base_url: str) -> Provenance:
    """Who signed the report and when, and the SHA-256 of exactly what they signed."""
    signer = ref("Practitioner", export.signer.id, export.signer.full_name)
    signed_content = Reference(
        identifier=Identifier(
            system=local_system(base_url, "signed-content-sha256"), value=export.content_sha256
        ),
        display=CANONICAL_FORMAT,
    )
    return Provenance(
        id=resource_id("Provenance", export.opinion_id),
        target=[ref("DiagnosticReport", export.opinion_id)],
        recorded=export.signed_at,
        activity=concept(codes.LEGALLY_AUTHENTICATED),
        agent=[ProvenanceAgent(type=concept(codes.AUTHOR_PARTICIPANT), who=signer)],
        entity=[ProvenanceEntity(role="source", what=signed_content)],
        signature=[
            Signature(
                type=[coding(codes.AUTHOR_SIGNATURE)],
                when=export.signed_at,
                who=signer,
                targetFormat=SIGNED_FORMAT,
            )
        ],
    )
