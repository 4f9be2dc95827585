"""Write the seed corpora under ``tests/fuzz/corpus/<target>/`` (run once; the files are
committed). Every seed is small and synthetic, or a file of pydicom's own test data."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from tests.fuzz.targets import BOUNDARY
from tests.portal import samples

CORPUS = Path(__file__).parent / "corpus"


def dicom_seeds() -> dict[str, bytes]:
    small = samples.ct_volume(count=1, size=8)[0]
    return {
        "ct_volume_8x8.dcm": small,
        "ct_small_cut.dcm": samples.dicom("CT_small.dcm")[:2048],
        "explicit_be_cut.dcm": samples.dicom("MR_small_bigendian.dcm")[:2048],
        "deflated.dcm": samples.dicom("image_dfl.dcm")[:4096],
    }


def zip_seeds() -> dict[str, bytes]:
    stored, deflated = io.BytesIO(), io.BytesIO()
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("CD/IMG0001", samples.ct_volume(count=1, size=8)[0])
        archive.writestr("report.pdf", samples.pdf(pages=1))
    with zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a/b.png", samples.png(4, 4))
        archive.writestr("inner.zip", stored.getvalue())
    return {"stored.zip": stored.getvalue(), "deflated_nested.zip": deflated.getvalue()}


def records_seeds() -> dict[str, bytes]:
    # The first byte chooses the check: 0 PDF, 1 JPEG, 2 PNG (see targets.records).
    return {
        "pdf": b"\x00" + samples.pdf(pages=2),
        "jpeg": b"\x01" + samples.jpeg(8, 6),
        "png": b"\x02" + samples.png(8, 6),
    }


def multipart_seeds() -> dict[str, bytes]:
    dash = b"--" + BOUNDARY
    body = (
        dash + b'\r\nContent-Disposition: form-data; name="files"; filename="a.dcm"\r\n'
        b"Content-Type: application/dicom\r\n\r\n"
        + b"\x00" * 40
        + b"DICM"
        + b"\r\n"
        + dash
        + b'\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
        + dash
        + b'\r\nContent-Disposition: form-data; name="files"; '
        b"filename*=UTF-8''%D1%81%D0%BD%D0%B8%D0%BC%D0%BE%D0%BA.pdf\r\n\r\n%PDF-1.4\r\n"
        + dash
        + b"--\r\n"
    )
    return {"two_files.txt": b"\x07" + body, "one_byte_chunks.txt": b"\x00" + body}


def main() -> None:
    for target, seeds in {
        "dicom": dicom_seeds(),
        "zip": zip_seeds(),
        "records": records_seeds(),
        "multipart": multipart_seeds(),
    }.items():
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (folder / name).write_bytes(data)


if __name__ == "__main__":
    main()
