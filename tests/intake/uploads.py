"""How the server hands a file to validation: its head, its last 64 bytes and its size."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_charset_files, get_testdata_file

from portal.intake.dicom import DicomHeader, inspect_dicom
from portal.intake.errors import Rejected

HEAD_LIMIT = 4 * 1024 * 1024  # the server's default
TAIL = 64


def dicom_data(name: str) -> bytes:
    """A file from pydicom's test files, pydicom-data or pydicom's charset samples."""
    path = get_testdata_file(name, download=False)
    if path is None:
        matches = get_charset_files(name)
        assert len(matches) == 1, name
        path = matches[0]
    return Path(str(path)).read_bytes()


def inspect(data: bytes, *, head_limit: int = HEAD_LIMIT) -> DicomHeader:
    """``inspect_dicom`` fed exactly as the upload stream feeds it."""
    return inspect_dicom(data[:head_limit], tail=data[-TAIL:], total_size=len(data))


def refused_code(data: bytes, **kwargs: int) -> str:
    """The code ``inspect`` refuses ``data`` with (its reason must be a sentence)."""
    with pytest.raises(Rejected) as refusal:
        inspect(data, **kwargs)
    assert refusal.value.reason.endswith(".")
    return refusal.value.code


def pixel_value_start(data: bytes) -> int:
    """Where the value of the Pixel Data element starts in a whole file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True)
    element_at = ds.buffer.tell()
    return element_at + (12 if data[element_at + 4 : element_at + 6] in (b"OB", b"OW") else 8)
