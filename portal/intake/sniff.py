"""Tell what an uploaded file is from its first bytes, never from its name or declared type."""

from __future__ import annotations

from enum import StrEnum

from portal.i18n import N_, _
from portal.intake.errors import Rejected

DICOM_PREAMBLE = 128
DICOM_MAGIC = b"DICM"

SUPPORTED = N_("This file is not a DICOM image, PDF, JPEG or PNG, or a ZIP archive of those.")

_EXECUTABLES = (
    b"MZ",  # Windows PE / DOS
    b"\x7fELF",  # Linux
    b"\xfe\xed\xfa\xce",  # Mach-O 32-bit
    b"\xfe\xed\xfa\xcf",  # Mach-O 64-bit
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",  # Mach-O universal binary, Java class
    b"#!",  # script with an interpreter line
)
_OTHER_ARCHIVES = (b"\x1f\x8b", b"Rar!\x1a\x07", b"7z\xbc\xaf\x27\x1c", b"BZh", b"\xfd7zXZ\x00")
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif")
# The first element of a raw DICOM data set: group 0002 (meta) or 0008 (identification), little
# or big endian, followed by an explicit VR or an implicit VR length.
_RAW_DICOM_GROUPS = (b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08")


class FileKind(StrEnum):
    """The file types the portal accepts, as recognised from their content."""

    dicom = "dicom"
    pdf = "pdf"
    jpeg = "jpeg"
    png = "png"
    zip = "zip"


def sniff(head: bytes) -> FileKind:
    """Recognise a file from its first bytes.

    Parameters
    ----------
    head : bytes
        The first bytes of the file (132 are enough to recognise every accepted type).

    Returns
    -------
    FileKind
        The type of the file.

    Raises
    ------
    Rejected
        ``"empty"`` for an empty file, ``"executable"`` for programs and scripts,
        ``"empty_archive"`` for a ZIP without entries, ``"dicom_without_preamble"`` for a raw
        DICOM data set without its file header, ``"unsupported_type"`` for anything else.
    """
    if not head:
        raise Rejected("empty", _("This file is empty."))
    if head.startswith(_EXECUTABLES):
        raise Rejected("executable", _("This file is a program, not a medical image or document."))
    if head[DICOM_PREAMBLE : DICOM_PREAMBLE + 4] == DICOM_MAGIC:
        return FileKind.dicom
    kind = _kind_by_signature(head)
    if kind is not None:
        return kind
    raise _unsupported(head)


def _kind_by_signature(head: bytes) -> FileKind | None:
    if head.startswith(b"%PDF-"):
        return FileKind.pdf
    if head.startswith(b"\xff\xd8\xff"):
        return FileKind.jpeg
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return FileKind.png
    if head.startswith(b"PK\x03\x04"):
        return FileKind.zip
    return None


def _unsupported(head: bytes) -> Rejected:
    if head.startswith(b"PK\x05\x06"):
        return Rejected("empty_archive", _("This ZIP archive is empty."))
    if head.startswith(b"PK\x07\x08"):
        return Rejected(
            "unsupported_type",
            _("This is one part of a split ZIP archive. Please upload it as a single ZIP file."),
        )
    if head.startswith(_OTHER_ARCHIVES):
        return Rejected(
            "unsupported_type",
            _("Only ZIP archives are accepted. Please upload the files as a ZIP."),
        )
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return Rejected(
            "unsupported_type",
            _(
                "HEIC photos are not accepted. Please send the photo as JPEG "
                "(on an iPhone: Settings > Camera > Formats > Most Compatible)."
            ),
        )
    if _looks_like_raw_dicom(head):
        return Rejected(
            "dicom_without_preamble",
            _(
                "This DICOM file lacks the standard DICOM file header. Please export the images "
                "again from the imaging software or CD viewer as standard DICOM files."
            ),
        )
    return Rejected("unsupported_type", SUPPORTED)


def _looks_like_raw_dicom(head: bytes) -> bool:
    if len(head) < 8 or head[:2] not in _RAW_DICOM_GROUPS:
        return False
    explicit_vr = head[4:6].isalpha() and head[4:6].isupper()
    implicit_length = int.from_bytes(head[4:8], "little")
    return explicit_vr or implicit_length < 1024
