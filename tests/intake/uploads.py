"""How the server hands a file to validation: its head, its last 64 bytes and its size."""

from __future__ import annotations

from pathlib import Path

from pydicom.data import get_charset_files, get_testdata_file

from portal.intake.dicom import DicomHeader, inspect_dicom

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
