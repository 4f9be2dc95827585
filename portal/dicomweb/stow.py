"""STOW-RS: store instances sent as ``multipart/related; type="application/dicom"`` (PS3.18 10.5).

Each part goes through the one ingest path every upload takes (validation, de-duplication,
encryption, indexing, audit), streamed: a request of many instances is never whole in memory.
The answer lists what was stored (``ReferencedSOPSequence``) and what was not
(``FailedSOPSequence`` with a ``FailureReason`` code and the reason in plain words).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from python_multipart.multipart import parse_options_header
from sqlmodel import Session, col, select

from portal.dicomweb.attributes import resolve
from portal.errors import UnsupportedMediaType
from portal.i18n import N_, _
from portal.intake.models import DicomInstance, DicomSeries, DicomStudy, UploadResult
from portal.intake.multipart import PartHeaders

DICOM = "application/dicom"
REFUSAL = N_('Send the instances as multipart/related; type="application/dicom".')

# FailureReason (0008,1197) codes, PS3.18 Table 10.5.3-3 and PS3.4 Annex B.
OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
_REASONS = {
    "quota": OUT_OF_RESOURCES,
    "too_large": OUT_OF_RESOURCES,
    "study_mismatch": DOES_NOT_MATCH,
}


def check_content_type(content_type: str) -> None:
    """Raise 415 unless the body is ``multipart/related`` of DICOM instances."""
    media_type, options = parse_options_header(content_type)
    part_type = options.get(b"type", b"").decode("latin-1").strip('"').lower()
    if media_type != b"multipart/related" or part_type not in {"", DICOM}:
        raise UnsupportedMediaType(REFUSAL)


def dicom_parts(
    parts: Iterator[tuple[PartHeaders, Iterator[bytes]]], refused: list[str]
) -> Iterator[tuple[str, Iterator[bytes]]]:
    """The parts that claim to be DICOM, named by their position; the others are drained and
    their names added to ``refused``."""
    for number, (headers, chunks) in enumerate(parts, start=1):
        name = _("part %(number)s", number=number)
        declared = parse_options_header(headers.content_type or DICOM)[0].decode("latin-1")
        if declared.lower() != DICOM:
            for _chunk in chunks:
                pass
            refused.append(name)
            continue
        yield name, chunks


@dataclass(frozen=True)
class StoreAnswer:
    status: int
    body: dict[str, Any]


def answer(
    *,
    session: Session,
    result: UploadResult,
    refused_parts: list[str],
    root_url: str,
    study_uid: str | None,
) -> StoreAnswer:
    """The PS3.18 response: 200 all stored, 202 some failed, 409 none stored."""
    file_ids = [accepted.id for accepted in result.accepted]
    rows = session.exec(
        select(DicomInstance, DicomSeries.series_instance_uid, DicomStudy.study_instance_uid)
        .join(DicomSeries, col(DicomSeries.id) == col(DicomInstance.series_id))
        .join(DicomStudy, col(DicomStudy.id) == col(DicomSeries.study_id))
        .where(col(DicomInstance.file_id).in_(file_ids))
    ).all()
    session.commit()
    by_file = {row[0].file_id: row for row in rows}
    stored = [by_file[file_id] for file_id in file_ids if file_id in by_file]
    failures = [
        (CANNOT_UNDERSTAND, _("%(part)s: %(reason)s", part=name, reason=_(REFUSAL)))
        for name in refused_parts
    ]
    failures += [
        (_REASONS.get(rejected.code or "", CANNOT_UNDERSTAND), rejected.reason)
        for rejected in result.rejected
    ]
    body: dict[str, Any] = {}
    if study_uid is not None:
        body[_tag("RetrieveURL")] = {"vr": "UR", "Value": [f"{root_url}/studies/{study_uid}"]}
    if stored:
        body[_tag("ReferencedSOPSequence")] = {
            "vr": "SQ",
            "Value": [_referenced(*row, root_url=root_url) for row in stored],
        }
    if failures:
        body[_tag("FailedSOPSequence")] = {
            "vr": "SQ",
            "Value": [
                {
                    _tag("FailureReason"): {"vr": "US", "Value": [code]},
                    "00000902": {"vr": "LO", "Value": [reason]},
                }
                for code, reason in failures
            ],
        }
    status = 200 if not failures else 202 if stored else 409
    return StoreAnswer(status, body)


def _referenced(
    instance: DicomInstance, series_uid: str, study_uid: str, *, root_url: str
) -> dict[str, Any]:
    url = (
        f"{root_url}/studies/{study_uid}/series/{series_uid}/instances/{instance.sop_instance_uid}"
    )
    return {
        _tag("ReferencedSOPClassUID"): {"vr": "UI", "Value": [instance.sop_class_uid]},
        _tag("ReferencedSOPInstanceUID"): {"vr": "UI", "Value": [instance.sop_instance_uid]},
        _tag("RetrieveURL"): {"vr": "UR", "Value": [url]},
    }


def _tag(keyword: str) -> str:
    resolved = resolve(keyword)
    assert resolved is not None
    return resolved[0]
