"""Files are recognised by their first bytes, whatever they are called."""

from __future__ import annotations

import io
import zipfile

import pytest

from portal.intake.errors import Rejected
from portal.intake.sniff import FileKind, sniff
from tests.intake.uploads import dicom_data


def _empty_zip() -> bytes:
    out = io.BytesIO()
    zipfile.ZipFile(out, "w").close()
    return out.getvalue()


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (dicom_data("CT_small.dcm")[:132], FileKind.dicom),
        (b"II*\x00" + bytes(124) + b"DICM", FileKind.dicom),  # TIFF/DICOM dual-personality file
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", FileKind.pdf),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", FileKind.jpeg),
        (b"\xff\xd8\xff\xe1\x00\x18Exif\x00\x00", FileKind.jpeg),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", FileKind.png),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", FileKind.zip),
    ],
    ids=["dicom", "dicom-tiff-preamble", "pdf", "jpeg-jfif", "jpeg-exif", "png", "zip"],
)
def test_accepted_kinds_are_recognised_by_content(head, kind):
    assert sniff(head) is kind


def test_the_whole_dicom_file_head_is_recognised():
    assert sniff(dicom_data("MR_small.dcm")) is FileKind.dicom


@pytest.mark.parametrize(
    ("head", "code"),
    [
        (b"", "empty"),
        (b"MZ\x90\x00\x03\x00\x00\x00" + bytes(120) + b"DICM", "executable"),  # PE/DICOM polyglot
        (b"MZ\x90\x00" + bytes(60), "executable"),
        (b"\x7fELF\x02\x01\x01" + bytes(60), "executable"),
        (b"\xcf\xfa\xed\xfe\x07\x00\x00\x01", "executable"),
        (b"#!/bin/sh\nrm -rf /\n", "executable"),
        (_empty_zip(), "empty_archive"),
        (b"PK\x07\x08" + bytes(20), "unsupported_type"),
        (b"\x1f\x8b\x08\x00" + bytes(20), "unsupported_type"),
        (b"Rar!\x1a\x07\x01\x00", "unsupported_type"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "unsupported_type"),
        (b"GIF89a\x01\x00\x01\x00", "unsupported_type"),
        (b"II*\x00\x08\x00\x00\x00", "unsupported_type"),  # a plain TIFF
        (b"this is just text pretending to be DICOM", "unsupported_type"),
        (b"<html><body>report</body></html>", "unsupported_type"),
        (bytes(200), "unsupported_type"),
        (b"  %PDF-1.4", "unsupported_type"),  # the signature must be at the very start
        (b"PDF-1.4", "unsupported_type"),
    ],
    ids=[
        "empty",
        "pe-dicom-polyglot",
        "windows-exe",
        "elf",
        "mach-o",
        "script",
        "empty-zip",
        "split-zip",
        "gzip",
        "rar",
        "heic",
        "gif",
        "tiff",
        "text",
        "html",
        "zeros",
        "pdf-not-at-start",
        "pdf-without-percent",
    ],
)
def test_everything_else_is_refused_with_a_code(head, code):
    with pytest.raises(Rejected) as refused:
        sniff(head)
    assert refused.value.code == code
    assert refused.value.reason.endswith(".")


@pytest.mark.parametrize(
    "name",
    ["ExplVR_LitEndNoMeta.dcm", "ExplVR_BigEndNoMeta.dcm", "rtstruct.dcm", "OT-PAL-8-face.dcm"],
)
def test_dicom_without_preamble_is_refused_with_advice(name):
    """pydicom reads these only with force=True: a raw data set with no 'DICM' header."""
    with pytest.raises(Rejected) as refused:
        sniff(dicom_data(name))
    assert refused.value.code == "dicom_without_preamble"
    assert "export" in refused.value.reason


def test_unsupported_reason_lists_what_is_accepted():
    with pytest.raises(Rejected) as refused:
        sniff(b"plain text")
    assert refused.value.reason == (
        "This file is not a DICOM image, PDF, JPEG or PNG, or a ZIP archive of those."
    )


def test_rejected_carries_code_and_reason():
    error = Rejected("truncated", "This file is incomplete.")
    assert (error.code, error.reason, str(error)) == (
        "truncated",
        "This file is incomplete.",
        "This file is incomplete.",
    )
