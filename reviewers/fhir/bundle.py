"""A delivered opinion as a FHIR R4 document: a ``Bundle`` of type ``document`` whose first
entry is the ``Composition`` (the opinion's sections, in the case's language), followed by
every resource it points at. Built from the typed models of ``fhir.resources`` (R4B), so what
is served has been validated as it was made. docs/fhir.md maps every field."""

from __future__ import annotations

from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.composition import Composition, CompositionAttester, CompositionSection
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource

from portal.i18n import _, format_minute, speaking
from portal.labels import word
from reviewers.fhir import codes, report, resources
from reviewers.fhir.elements import (
    Code,
    concept,
    full_url,
    has_text,
    narrative,
    ref,
    resource_id,
    uuid_identifier,
)
from reviewers.fhir.models import OpinionExport

CONFIDENTIALITY_NORMAL = "N"
"""HL7 v3 Confidentiality: normal health information (access is the portal's to control)."""


def build_document(export: OpinionExport, *, base_url: str) -> Bundle:
    """The document bundle of a delivered opinion, its words in the case's language.

    Parameters
    ----------
    export
        The opinion with everything it refers to (``reviewers.fhir.service``).
    base_url
        The portal's public address: links (DICOMweb, records) are absolute under it.

    Returns
    -------
    Bundle
        ``type`` ``document``; the ``Composition`` first; every reference in it resolves to
        an entry's ``fullUrl``; the same export builds the same bundle.
    """
    with speaking(export.case.language):
        case_resources: list[Resource | None] = [
            resources.patient(export),
            resources.practitioner(export),
            resources.service_request(export, base_url),
            resources.consent(export, base_url),
            resources.endpoint(export, base_url) if export.studies else None,
            *(resources.imaging_study(export, study) for study in export.studies),
            *(resources.document_reference(export, item, base_url) for item in export.records),
            report.diagnostic_report(export),
            report.provenance(export, base_url),
        ]
        present = [item for item in case_resources if item is not None]
        entries = [composition(export, present), *present]
    return Bundle(
        identifier=Identifier(
            system=codes.URI, value=full_url(resource_id("Bundle", _version_key(export)))
        ),
        type="document",
        timestamp=export.updated_at,
        entry=[BundleEntry(fullUrl=full_url(str(item.id)), resource=item) for item in entries],
    )


def _version_key(export: OpinionExport) -> str:
    """What changes the document: the signed content and each addendum after it."""
    addenda = "/".join(item.at.isoformat() for item in export.document.addenda)
    return f"{export.opinion_id}/{export.content_sha256}/{addenda}"


def composition(export: OpinionExport, entries: list[Resource]) -> Composition:
    signer = ref("Practitioner", export.signer.id, export.signer.full_name)
    return Composition(
        id=resource_id("Composition", export.opinion_id),
        language=export.case.language,
        identifier=uuid_identifier(export.opinion_id),
        status="amended" if export.amended else "final",
        type=concept(codes.REPORT_TYPE),
        subject=ref("Patient", export.patient.id, export.patient.full_name),
        date=export.updated_at,
        author=[signer],
        title=_("Second opinion %(reference)s", reference=export.case.reference),
        confidentiality=CONFIDENTIALITY_NORMAL,
        attester=[CompositionAttester(mode="legal", time=export.signed_at, party=signer)],
        section=_sections(export, entries),
    )


def _refs(entries: list[Resource], resource_type: str) -> list[Reference]:
    return [
        Reference(reference=full_url(str(item.id)))
        for item in entries
        if item.get_resource_type() == resource_type
    ]


def _section(
    title: str,
    text: str | None = None,
    *,
    code: Code | None = None,
    entry: list[Reference] | None = None,
    section: list[CompositionSection] | None = None,
) -> CompositionSection:
    return CompositionSection(
        title=title,
        code=concept(code) if code else None,
        text=narrative((None, text)) if has_text(text) and text else None,
        entry=entry or None,
        section=section or None,
    )


def _sections(export: OpinionExport, entries: list[Resource]) -> list[CompositionSection]:
    """The request, consent, images and records, then the opinion with its own sections."""
    case = export.case
    sections = [
        _section(
            _("Questions for the specialist"),
            case.question,
            entry=_refs(entries, "ServiceRequest"),
        )
    ]
    if has_text(case.history):
        sections.append(_section(_("History"), case.history))
    if export.consent is not None:
        sections.append(
            _section(_("Consent"), export.consent.text, entry=_refs(entries, "Consent"))
        )
    if export.studies:
        sections.append(_section(_("Images"), entry=_refs(entries, "ImagingStudy")))
    if export.records:
        sections.append(_section(_("Records"), entry=_refs(entries, "DocumentReference")))
    sections.append(
        _section(
            _("Second opinion"),
            entry=_refs(entries, "DiagnosticReport"),
            section=_opinion_sections(export),
        )
    )
    return sections


def _opinion_sections(export: OpinionExport) -> list[CompositionSection]:
    """The opinion's sections as the PDF orders them; empty ones are left out."""
    document = export.document
    found = [
        _section(_("Summary"), document.summary, code=codes.SUMMARY),
        _section(_("Imaging findings"), document.findings, code=codes.FINDINGS),
        _section(_("Impression / diagnosis"), document.impression, code=codes.IMPRESSION),
    ]
    answers = [(item.question, item.answer) for item in document.answers if item.answer.strip()]
    if answers:
        found.append(
            CompositionSection(title=_("Answers to your questions"), text=narrative(*answers))
        )
    recommendations = [
        (title, text)
        for title, text in (
            (_("Treatment options"), document.treatment_options),
            (_("Urgency"), word(document.urgency) if document.urgency else ""),
            (_("Further tests"), document.further_tests),
        )
        if text.strip()
    ]
    if recommendations:
        found.append(
            CompositionSection(
                title=_("Recommendations"),
                code=concept(codes.RECOMMENDATIONS),
                text=narrative(*recommendations),
            )
        )
    found.append(_section(_("Limitations"), document.limitations))
    if document.addenda:
        found.append(
            CompositionSection(
                title=_("Addenda"),
                code=concept(codes.ADDENDUM),
                text=narrative(
                    *(
                        (
                            _(
                                "Addendum %(number)s \u2014 %(moment)s",
                                number=number,
                                moment=format_minute(item.at),
                            ),
                            f"{_('by %(author)s', author=item.author)}\n{item.text}",
                        )
                        for number, item in enumerate(document.addenda, start=1)
                    )
                ),
            )
        )
    return [item for item in found if item.text is not None or item.entry]
