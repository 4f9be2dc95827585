"""The code systems and codes the FHIR export uses, in one place (docs/fhir.md lists them and
says why each was chosen).

Standard systems only, except where the portal's own identifiers are the meaning (an audit
action, an account's role): those are in the deployment's namespace (:func:`local_system`).
"""

from __future__ import annotations

from portal.cases.models import BodyRegion, Priority

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
URI = "urn:ietf:rfc:3986"
"""Identifier system for a value that is itself a URI (``urn:uuid:…``, ``urn:oid:…``)."""
DICOM_UID = "urn:dicom:uid"
BCP47 = "urn:ietf:bcp:47"

V2_DIAGNOSTIC_SECTION = "http://terminology.hl7.org/CodeSystem/v2-0074"
V2_IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
V3_CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
V3_DOCUMENT_COMPLETION = "http://terminology.hl7.org/CodeSystem/v3-DocumentCompletion"
V3_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
ENDPOINT_CONNECTION = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
PROVENANCE_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
SIGNATURE_TYPE = "urn:iso-astm:E1762-95:2013"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
AUDIT_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
AUDIT_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
AUDIT_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
AUDIT_AGENT_TYPE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
AUDIT_EVENT_ACTION = "http://hl7.org/fhir/audit-event-action"
AUDIT_EVENT_OUTCOME = "http://hl7.org/fhir/audit-event-outcome"
NETWORK_TYPE = "http://hl7.org/fhir/network-type"

# What the document is. LOINC 18748-4 "Diagnostic imaging study" is the report of a consulting
# specialist's interpretation of image data (docs/fhir.md, "Why 18748-4").
REPORT_TYPE = (LOINC, "18748-4", "Diagnostic imaging study")
RADIOLOGY_SECTION = (V2_DIAGNOSTIC_SECTION, "RAD", "Radiology")
CONSENT_CATEGORY = (LOINC, "59284-0", "Patient Consent")
PRIVACY_SCOPE = (CONSENT_SCOPE, "patient-privacy", "Privacy Consent")
LEGALLY_AUTHENTICATED = (V3_DOCUMENT_COMPLETION, "LA", "legally authenticated")
AUTHOR_SIGNATURE = (SIGNATURE_TYPE, "1.2.840.10065.1.12.1.1", "Author's Signature")
AUTHOR_PARTICIPANT = (PROVENANCE_PARTICIPANT, "author", "Author")
WADO_RS = (ENDPOINT_CONNECTION, "dicom-wado-rs", "DICOM WADO-RS")
ACCESSION = (V2_IDENTIFIER_TYPE, "ACSN", "Accession ID")

# The opinion's sections: codes where a standard one says the same thing (DICOM PS3.20's
# imaging report sections; DCM textual observation codes); the others carry a title only.
SUMMARY = (DICOM, "121111", "Summary")
FINDINGS = (LOINC, "18782-3", "Radiology Study observation (narrative)")
IMPRESSION = (LOINC, "19005-8", "Radiology Imaging study [Impression] (narrative)")
RECOMMENDATIONS = (LOINC, "18783-1", "Radiology Study recommendation (narrative)")
ADDENDUM = (LOINC, "55107-7", "Addendum")

BODY_SITES: dict[BodyRegion, tuple[str, str, str]] = {
    BodyRegion.head: (SNOMED, "69536005", "Head structure"),
    BodyRegion.neck: (SNOMED, "45048000", "Neck structure"),
    BodyRegion.spine: (SNOMED, "421060004", "Vertebral column structure"),
    BodyRegion.chest: (SNOMED, "51185008", "Thoracic structure"),
    BodyRegion.heart: (SNOMED, "80891009", "Heart structure"),
    BodyRegion.breast: (SNOMED, "76752008", "Breast structure"),
    BodyRegion.abdomen: (SNOMED, "113345001", "Abdominal structure"),
    BodyRegion.pelvis: (SNOMED, "12921003", "Pelvic structure"),
    BodyRegion.upper_limb: (SNOMED, "53120007", "Upper limb structure"),
    BodyRegion.lower_limb: (SNOMED, "61685007", "Lower limb structure"),
    BodyRegion.whole_body: (SNOMED, "38266002", "Entire body as a whole"),
}
"""SNOMED CT body structures for the portal's body regions; ``other`` has none (text only)."""

REQUEST_PRIORITY: dict[Priority, str] = {Priority.standard: "routine", Priority.urgent: "urgent"}
"""The case's priority as FHIR ``request-priority``."""

MODALITIES: dict[str, str] = {
    "CR": "Computed Radiography",
    "CT": "Computed Tomography",
    "DX": "Digital Radiography",
    "MG": "Mammography",
    "MR": "Magnetic Resonance",
    "NM": "Nuclear Medicine",
    "OT": "Other",
    "PT": "Positron emission tomography",
    "RF": "Radio Fluoroscopy",
    "SR": "SR Document",
    "US": "Ultrasound",
    "XA": "X-Ray Angiography",
}
"""DICOM modality codes (PS3.16 CID 29 / CID 33) with their code meanings; any other code a
study holds is passed on as it is, without a display."""

FILE_MEDIA_TYPES = {"pdf": "application/pdf", "jpeg": "image/jpeg", "png": "image/png"}
"""The media type of each kind of record (``portal.intake.sniff.FileKind``)."""


def local_system(base_url: str, name: str) -> str:
    """A code or identifier system of this deployment (its public address, then ``/fhir/``)."""
    return f"{base_url.rstrip('/')}/fhir/{name}"
