"""WADO-RS: a case's instances as stored, and their metadata as DICOM JSON (PS3.18 10.4).

Instances are streamed from the vault exactly as uploaded: each part's SHA-256 is the one
recorded at upload, and is verified as the part is read. Metadata is read from the head of
each object only (segment by segment), with bulk data given as ``BulkDataURI``.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID
from sqlalchemy import select
from sqlmodel import Session, col

from portal.dicomweb.attributes import sql_column
from portal.errors import NotFound
from portal.i18n import _
from portal.intake.dicom import quiet_pydicom
from portal.intake.models import CaseFile, DicomInstance, DicomSeries, DicomStudy
from portal.objects.models import CaseKey, StoredObject
from storage.reader import buffered
from storage.vault import Vault

BULK_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
BULK_THRESHOLD = 1024
"""Binary values longer than this are given by reference (``BulkDataURI``), not inline."""
HEADER_WINDOW = 256 * 1024
PIXEL_DATA = 0x7FE00010


@dataclass(frozen=True)
class Located:
    """One instance of the case and where its bytes are."""

    study_uid: str
    series_uid: str
    instance: DicomInstance
    file: CaseFile
    stored: StoredObject

    @property
    def path(self) -> str:
        """Its path below the case's DICOMweb root."""
        return (
            f"/studies/{self.study_uid}/series/{self.series_uid}"
            f"/instances/{self.instance.sop_instance_uid}"
        )


def locate(
    *,
    session: Session,
    case_id: uuid.UUID,
    study_uid: str,
    series_uid: str | None = None,
    instance_uid: str | None = None,
) -> tuple[list[Located], bytes]:
    """The case's instances under the given UIDs, in series then instance order, and the
    case's wrapped data key to read them (one query).

    Raises
    ------
    NotFound
        Nothing of the case matches (a study of another case is not found either).
    """
    query = (
        select(
            col(DicomStudy.study_instance_uid),
            col(DicomSeries.series_instance_uid),
            DicomInstance,
            CaseFile,
            StoredObject,
            col(CaseKey.wrapped_key),
        )
        .join(CaseKey, col(CaseKey.case_id) == col(DicomStudy.case_id))
        .join(DicomSeries, col(DicomSeries.study_id) == col(DicomStudy.id))
        .join(DicomInstance, col(DicomInstance.series_id) == col(DicomSeries.id))
        .join(CaseFile, col(CaseFile.id) == col(DicomInstance.file_id))
        .join(StoredObject, col(StoredObject.id) == col(CaseFile.stored_object_id))
        .where(col(DicomStudy.case_id) == case_id)
        .where(col(DicomStudy.study_instance_uid) == study_uid)
    )
    if series_uid is not None:
        query = query.where(col(DicomSeries.series_instance_uid) == series_uid)
    if instance_uid is not None:
        query = query.where(col(DicomInstance.sop_instance_uid) == instance_uid)
    query = query.order_by(
        sql_column(DicomSeries.series_number).is_(None),
        sql_column(DicomSeries.series_number),
        col(DicomSeries.series_instance_uid),
        sql_column(DicomInstance.instance_number).is_(None),
        sql_column(DicomInstance.instance_number),
        col(DicomInstance.sop_instance_uid),
    )
    rows = session.execute(query).all()
    if not rows:
        if instance_uid:
            raise NotFound(_("Instance not found in this case."))
        if series_uid:
            raise NotFound(_("Series not found in this case."))
        raise NotFound(_("Study not found in this case."))
    return [Located(*row[:5]) for row in rows], rows[0][5]


def instance_bytes(vault: Vault, wrapped: bytes, located: Located) -> Iterator[bytes]:
    """The instance as uploaded, verified against its SHA-256 as it streams."""
    return vault.open(
        case_id=str(located.stored.case_id),
        wrapped_key=wrapped,
        object_key=located.stored.object_key,
        sha256=located.stored.sha256,
    )


def open_stored(vault: Vault, wrapped: bytes, located: Located, window: int) -> io.BufferedReader:
    """A seekable plaintext view of the instance that decrypts only what is read."""
    return buffered(
        vault,
        case_id=str(located.stored.case_id),
        wrapped_key=wrapped,
        object_key=located.stored.object_key,
        window=window,
    )


def read_header(source: io.BufferedReader) -> tuple[Dataset, int]:
    """The data set up to its pixel data, and where the pixel data element starts."""
    with quiet_pydicom():
        ds = dcmread(source, stop_before_pixels=True)
    return ds, source.tell()


def metadata(ds: Dataset, *, has_pixels: bool, instance_url: str) -> dict[str, Any]:
    """The instance's DICOM JSON (PS3.18 F.2), large binary values by ``BulkDataURI``."""
    answer: dict[str, Any] = {}
    with quiet_pydicom():
        for elem in ds:
            answer[f"{elem.tag:08X}"] = _element_json(elem, instance_url)
    if has_pixels:
        native = "Rows" in ds and not _encapsulated(ds)
        vr = "OW" if native and int(ds.get("BitsAllocated", 8)) > 8 else "OB"
        answer[f"{PIXEL_DATA:08X}"] = {"vr": vr, "BulkDataURI": f"{instance_url}/bulkdata/7FE00010"}
    return answer


def _element_json(elem: DataElement, instance_url: str) -> dict[str, Any]:
    if elem.VR in BULK_VRS and elem.value is not None and len(elem.value) > BULK_THRESHOLD:
        return {"vr": elem.VR, "BulkDataURI": f"{instance_url}/bulkdata/{elem.tag:08X}"}
    encoded: dict[str, Any] = elem.to_json_dict(
        bulk_data_element_handler=None, bulk_data_threshold=2**31
    )
    return encoded


def _encapsulated(ds: Dataset) -> bool:
    return bool(UID(str(ds.file_meta.get("TransferSyntaxUID", ""))).is_encapsulated)


def bulk_value(ds: Dataset, tag: int) -> bytes:
    """A top-level binary value of the header, as referenced by :func:`metadata`."""
    elem = ds.get(tag)
    if elem is None or elem.VR not in BULK_VRS or elem.value is None:
        raise NotFound(_("This instance has no such bulk data."))
    value: bytes = elem.value
    return value


def metadata_of(
    vault: Vault, wrapped: bytes, instances: Sequence[Located], root_url: str
) -> Iterator[dict[str, Any]]:
    """Metadata of each instance, read header by header (nothing past the pixel data)."""
    for located in instances:
        with open_stored(vault, wrapped, located, HEADER_WINDOW) as source:
            ds, pixel_at = read_header(source)
            has_pixels = pixel_at < located.stored.size
        yield metadata(ds, has_pixels=has_pixels, instance_url=root_url + located.path)
