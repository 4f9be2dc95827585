"""Test files made on the spot or taken from pydicom's own test data (never downloaded)."""

from __future__ import annotations

import functools
import io
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
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


def ct_volume(
    count: int = 40, size: int = 64, *, patient_name: str = "PHANTOM^BALL"
) -> list[bytes]:
    """A synthetic CT volume with full geometry (a bright ball in water), one file per slice:
    enough for a viewer to stack the slices and reformat them (MPR)."""
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    grid = np.indices((size, size)).astype(np.float64) - size / 2
    files = []
    for index in range(count):
        z = index - count / 2
        inside = grid[0] ** 2 + grid[1] ** 2 + (z * size / count) ** 2 < (size / 3) ** 2
        hu = np.where(inside, 400, 0) + (grid[1] > size / 4) * 60
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID, ds.Modality = patient_name, "PH-1", "CT"
        ds.StudyDate, ds.SeriesNumber, ds.InstanceNumber = "20261101", 2, index + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-size / 2, -size / 2, float(z * 2)]
        ds.PixelSpacing, ds.SliceThickness = [1, 1], 2
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelData = (hu + 1024).astype("<i2").tobytes()
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append(buffer.getvalue())
    return files


def ct_zip(instances: int, size: int = 512) -> bytes:
    """A CD-like ZIP (stored, no DICOMDIR) of a ``ct_volume`` of ``instances`` slices."""
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for number, data in enumerate(ct_volume(count=instances, size=size)):
            archive.writestr(f"DICOM/IM{number:04d}", data)
    return out.getvalue()


@functools.cache
def solid_png(width: int, height: int, colour: tuple[int, ...] = (40, 90, 160)) -> bytes:
    """A PNG of one colour (RGB, or RGBA given four values), never held decoded here."""

    def chunk(kind: bytes, data: bytes = b"") -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    row = b"\x00" + bytes(colour) * width
    idat = _deflate_repeated(row, height)
    colour_type = 6 if len(colour) == 4 else 2
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND")


def _deflate_repeated(row: bytes, count: int, rows_per_block: int = 100) -> bytes:
    """``zlib.compress(row * count)`` without compressing it all: after a full flush deflate
    starts afresh, so one block of rows compressed once is repeated; the checksum is computed
    over the whole. Five times quicker than compressing half a gigabyte."""
    blocks, rest = divmod(count, rows_per_block)
    if blocks == 0:
        return zlib.compress(row * count, 9)
    block = row * rows_per_block
    compressor = zlib.compressobj(9)
    first = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    body = first[2:]  # the same block again, without the two-byte zlib header
    tail = compressor.compress(row * rest) + compressor.flush(zlib.Z_FULL_FLUSH) if rest else b""
    checksum = 1
    for _ in range(blocks):
        checksum = zlib.adler32(block, checksum)
    checksum = zlib.adler32(row * rest, checksum)
    final = b"\x03\x00"  # an empty last block (fixed Huffman, end of block)
    return first + body * (blocks - 1) + tail + final + struct.pack(">I", checksum)
