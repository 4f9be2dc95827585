"""Test files made on the spot or taken from pydicom's own test data (never downloaded)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

from PIL import Image
from pydicom import dcmread
from pydicom.data import get_charset_files, get_testdata_file
from pypdf import PdfWriter


def dicom_path(name: str) -> Path:
    """A DICOM file shipped with pydicom or pydicom-data (test or character-set samples)."""
    path = get_testdata_file(name, download=False) or next(iter(get_charset_files(name)), None)
    assert path is not None, name
    return Path(str(path))


def dicom(name: str = "CT_small.dcm") -> bytes:
    return dicom_path(name).read_bytes()


def patient_name(name: str) -> str:
    """The patient name as pydicom itself decodes it from the file's character set."""
    return str(dcmread(dicom_path(name), stop_before_pixels=True).PatientName)


def pdf(pages: int = 2) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def png(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def noise_png(side: int) -> bytes:
    """A PNG that does not compress: about 3 * side^2 bytes."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, format="PNG")
    return out.getvalue()


def jpeg(width: int = 64, height: int = 48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 30, 200)).save(out, format="JPEG")
    return out.getvalue()


def dicomdir_folder() -> Path:
    path = get_testdata_file("DICOMDIR", download=False)
    assert path is not None
    return Path(str(path)).parent


def zip_folder(folder: Path, *, skip: set[str] | None = None, prefix: str = "") -> bytes:
    """Zip a folder the way a hospital CD is zipped, optionally leaving some files out."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder).as_posix()
            if path.is_file() and relative not in (skip or set()):
                archive.write(path, prefix + relative)
    return out.getvalue()


def ct_series(count: int, *, body_part: str = "SPINE", modality: str = "CT") -> list[bytes]:
    """``count`` instances of one new series, made from pydicom's CT_small.dcm."""
    from pydicom.uid import generate_uid

    study_uid, series_uid = generate_uid(), generate_uid()
    instances = []
    for number in range(1, count + 1):
        dataset = dcmread(dicom_path("CT_small.dcm"))
        dataset.StudyInstanceUID = study_uid
        dataset.SeriesInstanceUID = series_uid
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.InstanceNumber = number
        dataset.BodyPartExamined = body_part
        dataset.Modality = modality
        out = io.BytesIO()
        dataset.save_as(out, enforce_file_format=True)
        instances.append(out.getvalue())
    return instances
