"""The case's side of the document: the patient, the signer, the request, the consent, the
studies (with the case's DICOMweb endpoint) and the records. Pure builders over
``OpinionExport``; docs/fhir.md maps every field."""

from __future__ import annotations

import base64

from fhir.resources.R4B.annotation import Annotation
from fhir.resources.R4B.attachment import Attachment
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.consent import Consent, ConsentPolicy
from fhir.resources.R4B.documentreference import DocumentReference, DocumentReferenceContent
from fhir.resources.R4B.endpoint import Endpoint
from fhir.resources.R4B.humanname import HumanName
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.imagingstudy import ImagingStudy, ImagingStudySeries
from fhir.resources.R4B.patient import Patient, PatientCommunication
from fhir.resources.R4B.practitioner import Practitioner, PractitionerQualification
from fhir.resources.R4B.servicerequest import ServiceRequest

from portal.i18n import _
from portal.intake.schemas import SeriesPublic, StudyPublic
from portal.labels import word
from reviewers.fhir import codes
from reviewers.fhir.codes import local_system
from reviewers.fhir.elements import coding, concept, ref, resource_id, uuid_identifier
from reviewers.fhir.models import OpinionExport, RecordFacts

MAX_UNSIGNED_INT = 2**31 - 1
"""FHIR's ``unsignedInt`` stops here; a larger size is left out rather than wrapped."""


def language(code: str) -> CodeableConcept:
    return CodeableConcept(coding=[Coding(system=codes.BCP47, code=code)])


def patient(export: OpinionExport) -> Patient:
    person = export.patient
    return Patient(
        id=resource_id("Patient", person.id),
        identifier=[uuid_identifier(person.id)],
        name=[HumanName(text=person.full_name)],
        birthDate=person.birth_date,
        communication=[PatientCommunication(language=language(person.language), preferred=True)],
    )


def practitioner(export: OpinionExport) -> Practitioner:
    signer = export.signer
    qualification = (
        [PractitionerQualification(code=CodeableConcept(text=signer.credentials))]
        if signer.credentials.strip()
        else None
    )
    return Practitioner(
        id=resource_id("Practitioner", signer.id),
        identifier=[uuid_identifier(signer.id)],
        name=[HumanName(text=signer.full_name)],
        qualification=qualification,
        communication=[language(code) for code in signer.languages] or None,
    )


def service_request(export: OpinionExport, base_url: str) -> ServiceRequest:
    """What the patient asked for: a second opinion on their images, with their question."""
    case = export.case
    body_site = codes.BODY_SITES.get(case.body_region)
    return ServiceRequest(
        id=resource_id("ServiceRequest", case.id),
        identifier=[
            Identifier(system=local_system(base_url, "case-reference"), value=case.reference),
            uuid_identifier(case.id),
        ],
        status="completed",
        intent="order",
        code=CodeableConcept(text=_("Second opinion")),
        priority=codes.REQUEST_PRIORITY[case.priority],
        subject=ref("Patient", export.patient.id),
        authoredOn=case.submitted_at,
        requester=ref("Patient", export.patient.id),
        performer=[ref("Practitioner", export.signer.id)],
        reasonCode=[CodeableConcept(text=case.subject)],
        bodySite=[concept(body_site, word(case.body_region))],
        note=[
            Annotation(
                text=case.question,
                authorReference=ref("Patient", export.patient.id),
                time=case.submitted_at,
            )
        ],
    )


def consent(export: OpinionExport, base_url: str) -> Consent | None:
    """The consent the patient accepted: its version, when, and the text itself."""
    accepted = export.consent
    if accepted is None:
        return None
    source = (
        Attachment(
            contentType="text/plain; charset=utf-8",
            language=accepted.text_language,
            data=base64.b64encode(accepted.text.encode("utf-8")),
            title=accepted.version,
        )
        if accepted.text is not None
        else None
    )
    return Consent(
        id=resource_id("Consent", f"{export.case.id}/{accepted.id}"),
        status="active",
        scope=concept(codes.PRIVACY_SCOPE),
        category=[concept(codes.CONSENT_CATEGORY)],
        patient=ref("Patient", export.patient.id),
        dateTime=accepted.accepted_at,
        performer=[ref("Patient", export.patient.id)],
        policy=[ConsentPolicy(uri=f"{base_url.rstrip('/')}/api/consent")],
        policyRule=CodeableConcept(
            coding=[
                Coding(system=local_system(base_url, "consent-version"), code=accepted.version)
            ],
            text=accepted.version,
        ),
        sourceAttachment=source,
    )


def dicomweb_root(export: OpinionExport, base_url: str) -> str:
    return f"{base_url.rstrip('/')}/api/cases/{export.case.id}/dicomweb"


def endpoint(export: OpinionExport, base_url: str) -> Endpoint:
    """The case's DICOMweb service, where a viewer retrieves every study of the document."""
    return Endpoint(
        id=resource_id("Endpoint", export.case.id),
        status="active",
        connectionType=coding(codes.WADO_RS),
        name=f"DICOMweb {export.case.reference}",
        payloadType=[CodeableConcept(text="DICOM")],
        payloadMimeType=["application/dicom"],
        address=dicomweb_root(export, base_url),
    )


def _modality(code: str | None) -> Coding:
    value = code or "OT"
    return Coding(system=codes.DICOM, code=value, display=codes.MODALITIES.get(value))


def _dicom_date(value: str | None) -> str | None:
    """A DICOM DA (``YYYYMMDD``) as a FHIR date; None when it is not one."""
    text = (value or "").strip()
    if len(text) != 8 or not text.isdigit():
        return None
    year, month, day = text[:4], text[4:6], text[6:]
    if not ("01" <= month <= "12" and "01" <= day <= "31"):
        return None
    return f"{year}-{month}-{day}"


def _series(item: SeriesPublic) -> ImagingStudySeries:
    number = item.series_number
    return ImagingStudySeries(
        uid=item.series_instance_uid,
        number=number if number is not None and 0 <= number <= MAX_UNSIGNED_INT else None,
        modality=_modality(item.modality),
        description=item.description or None,
        numberOfInstances=item.instances,
    )


def imaging_study(export: OpinionExport, study: StudyPublic) -> ImagingStudy:
    """One study as the portal indexed it: series, modalities and instance counts; its images
    are retrieved from the case's DICOMweb endpoint."""
    identifiers = [Identifier(system=codes.DICOM_UID, value=f"urn:oid:{study.study_instance_uid}")]
    if study.accession_number:
        identifiers.append(Identifier(type=concept(codes.ACCESSION), value=study.accession_number))
    modalities = list(dict.fromkeys([*study.modalities, *(s.modality for s in study.series)]))
    return ImagingStudy(
        id=resource_id("ImagingStudy", study.id),
        identifier=identifiers,
        status="available",
        modality=[_modality(code) for code in modalities if code] or None,
        subject=ref("Patient", export.patient.id),
        started=_dicom_date(study.study_date),
        basedOn=[ref("ServiceRequest", export.case.id)],
        endpoint=[ref("Endpoint", export.case.id)],
        numberOfSeries=len(study.series),
        numberOfInstances=sum(item.instances for item in study.series),
        description=study.description or None,
        series=[_series(item) for item in study.series] or None,
    )


def document_reference(
    export: OpinionExport, record: RecordFacts, base_url: str
) -> DocumentReference:
    """A record the patient uploaded, linked to its bytes in the portal (not embedded: a
    record may be large, and the portal serves it with its SHA-256, audited)."""
    url = f"{base_url.rstrip('/')}/api/cases/{export.case.id}/files/{record.id}/content"
    return DocumentReference(
        id=resource_id("DocumentReference", record.id),
        identifier=[uuid_identifier(record.id)],
        status="current",
        subject=ref("Patient", export.patient.id),
        date=record.created_at,
        author=[ref("Patient", export.patient.id)],
        description=record.filename or None,
        content=[
            DocumentReferenceContent(
                attachment=Attachment(
                    contentType=codes.FILE_MEDIA_TYPES.get(record.kind, "application/octet-stream"),
                    url=url,
                    size=record.size if record.size <= MAX_UNSIGNED_INT else None,
                    title=record.filename or None,
                    creation=record.created_at,
                )
            )
        ],
    )
