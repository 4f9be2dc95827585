"""Synthetic DICOM files whose header is longer than the upload's 4 MiB head, and hostile ones.

Every file is built here with pydicom from made-up values: no patient data.
"""

from __future__ import annotations

import io
import struct

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MiB = 1024 * 1024
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def _base(sop_class: str, modality: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Synthetic^Long^Header"
    ds.PatientID = "SYN-LONG-1"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.SeriesNumber = 7
    ds.InstanceNumber = 1
    ds.StudyDate = "20260101"
    return ds


def _image(ds: Dataset, *, frames: int = 1) -> None:
    ds.Rows, ds.Columns = 2, 2
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = bytes(range(8)) * frames


def _encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def enhanced_mr(frames: int = 1100) -> bytes:
    """An Enhanced MR whose per-frame functional groups make a header of over 4 MiB."""
    ds = _base(ENHANCED_MR, "MR")
    ds.SharedFunctionalGroupsSequence = Sequence([Dataset()])
    per_frame = []
    for number in range(frames):
        item = Dataset()
        position = Dataset()
        position.ImagePositionPatient = [0.0, 0.0, float(number)]
        item.PlanePositionSequence = Sequence([position])
        content = Dataset()
        content.FrameAcquisitionNumber = number
        content.FrameComments = f"synthetic frame {number} " + "x" * 4000
        item.FrameContentSequence = Sequence([content])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    _image(ds, frames=frames)
    data = _encode(ds)
    assert data.index(b"\xe0\x7f\x10\x00") > 4 * MiB
    return data


def encapsulated_pdf(size: int = 6 * MiB) -> bytes:
    """An Encapsulated PDF whose document (not pixel data) is ``size`` bytes."""
    ds = _base(ENCAPSULATED_PDF, "DOC")
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    body = b"%PDF-1.4\n% synthetic\n"
    ds.EncapsulatedDocument = body + b"0" * (size - len(body))
    return _encode(ds)


def private_ob(size: int = 5 * MiB) -> bytes:
    """A small MR image with a private OB element of ``size`` bytes before its pixel data."""
    ds = _base(MR_IMAGE, "MR")
    block = ds.private_block(0x0009, "SYNTHETIC VENDOR", create=True)
    block.add_new(0x01, "OB", b"\x5a" * size)
    _image(ds)
    return _encode(ds)


def _preamble_and_meta(sop_class: str = SECONDARY_CAPTURE) -> bytes:
    """A File Meta group (explicit VR little endian), then nothing: elements follow."""
    ds = _base(sop_class, "OT")
    data = _encode(ds)
    meta_end = 132 + 12 + struct.unpack_from("<L", data, 132 + 8)[0]
    return data[:meta_end]


def _element(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    if vr in (b"OB", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH2sHL", group, element, vr, 0, len(value)) + value
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


def claims_four_gib() -> bytes:
    """A small file whose private element claims a value of almost 4 GiB."""
    head = _preamble_and_meta() + _element(0x0008, 0x0016, b"UI", SECONDARY_CAPTURE.encode())
    return head + struct.pack("<HH2sHL", 0x0009, 0x1001, b"OB", 0, 0xFFFFFFF0) + b"\0" * 1024


def nested_sequences(depth: int = 1000) -> bytes:
    """Sequences nested ``depth`` deep (undefined lengths), each in the one before."""
    opening = struct.pack("<HH2sHL", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF) + struct.pack(
        "<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF
    )
    closing = struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    return _preamble_and_meta() + opening * depth + closing * depth


def tiny_elements(count: int = 2_000_000) -> bytes:
    """``count`` empty private elements (8 bytes each): a header that is all bookkeeping."""
    index = np.arange(count)
    records = np.zeros((count, 4), dtype="<u2")  # group, element, VR, length
    records[:, 0] = 0x0011 + 2 * (index // 0xF000)
    records[:, 1] = 0x1000 + index % 0xF000
    records[:, 2] = int.from_bytes(b"LO", "little")
    return _preamble_and_meta() + records.tobytes()
