"""Records shown in the portal: PDF pages and photos rendered by the server, never the original.

The rendering itself (``portal.records.render``) is tested on bytes made here; the API and the
page on real uploads through SeaweedFS, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import struct
import uuid
import zlib
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from fpdf import FPDF
from PIL import Image, ImageCms
from pypdf import PdfReader, PdfWriter
from sqlmodel import Session, col, select

from portal.accounts.models import Role
from portal.audit.models import AuditEvent
from portal.records import render, service
from portal.records.render import PageNotFound, ProtectedRecord, RecordTooLarge, UnreadableRecord
from portal.records.service import RecordState
from portal.settings import Settings
from tests.fixtures.app import Account, Accounts, open_case, submit_case
from tests.portal import samples
from tests.portal.test_pages import browser_sign_in, check_page

ORIENTATION, GPS_IFD = 0x0112, 0x8825
TRAILER = b"TRAILING-BYTES-AFTER-THE-PICTURE"
PDF_PASSWORD = "open sesame"
MAX_PIXELS = Settings.model_fields["record_max_pixels"].default


# Test files --------------------------------------------------------------------------------


def report_pdf(pages: int = 3) -> bytes:
    """A report whose pages differ: their own text and a red block at a different place."""
    document = FPDF()
    for number in range(1, pages + 1):
        document.add_page()
        document.set_font("helvetica", size=20)
        document.cell(0, 12, f"Laboratory report, page {number}")
        document.ln(14)
        document.set_font("helvetica", size=12)
        document.multi_cell(0, 8, f"Haemoglobin {118 + number} g/L\nLeukocytes {5 + number}.1 G/L")
        document.set_fill_color(200, 0, 0)
        document.rect(20 + 50 * ((number - 1) % 3), 100, 40, 20, style="F")
    return bytes(document.output())


def protected_pdf(user_password: str = PDF_PASSWORD) -> bytes:
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(report_pdf(1))))
    writer.encrypt(user_password=user_password, owner_password="owner secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def damaged_pdf() -> bytes:
    """Starts and ends like a PDF (so intake accepts it), with nothing readable between."""
    return b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"


def phone_photo() -> bytes:
    """An 80 x 40 JPEG stored on its side (EXIF orientation 6): upright it is 40 wide, 80 tall,
    red on top. It carries GPS coordinates, an ICC profile, a comment and trailing bytes."""
    stored = Image.new("RGB", (80, 40), (220, 20, 20))
    stored.paste((20, 20, 220), (40, 0, 80, 40))  # the stored right half ends up at the bottom
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    gps = exif.get_ifd(GPS_IFD)
    gps.update({1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)})
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=95, exif=exif, icc_profile=icc, comment=b"Dr House's clinic")
    return out.getvalue() + TRAILER


def png_bytes(image: Image.Image, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **params)
    return out.getvalue()


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def rgb_at(image: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    red, green, blue = np.asarray(image)[y, x]
    return int(red), int(green), int(blue)


# Rendering, without storage ----------------------------------------------------------------


@pytest.mark.parametrize("width", [200, 777, 1200, 2000])
def test_pdf_pages_are_exactly_the_width_asked_for(width: int):
    page = render.render_pdf_page(report_pdf(1), page=1, width_px=width)
    image = decoded(page.data)
    assert page.media_type == "image/png" and image.size == (width, page.height) == (
        page.width,
        page.height,
    )
    assert abs(page.height / width - 841.89 / 595.28) < 0.002  # A4 proportions


def test_pages_of_a_pdf_differ_and_the_same_page_gives_the_same_bytes():
    data = report_pdf(3)
    assert render.pdf_page_count(data) == 3
    pages = [render.render_pdf_page(data, page=n, width_px=600).data for n in (1, 2, 3)]
    assert len(set(pages)) == 3
    assert render.render_pdf_page(io.BytesIO(data), page=2, width_px=600).data == pages[1]
    pixels = np.asarray(decoded(pages[0]))
    assert pixels.ndim == 3 and (pixels[..., 0] > 150).any() and (pixels.max(axis=2) < 80).any()


def test_a_page_without_colour_is_sent_as_grey_and_a_turned_page_as_landscape():
    writer = PdfWriter()
    writer.add_blank_page(width=300, height=600).rotate(90)
    out = io.BytesIO()
    writer.write(out)
    page = render.render_pdf_page(out.getvalue(), page=1, width_px=400)
    image = decoded(page.data)
    assert image.mode == "L" and image.size == (400, 200) and np.asarray(image).min() == 255


def test_pages_outside_the_document_are_not_found():
    for page in (0, 4, -1):
        with pytest.raises(PageNotFound, match="has 3 pages, numbered 1 to 3"):
            render.render_pdf_page(report_pdf(3), page=page, width_px=400)


def test_protected_and_damaged_pdfs_raise_errors_a_person_can_read():
    with pytest.raises(ProtectedRecord, match="password"):
        render.render_pdf_page(protected_pdf(), page=1, width_px=400)
    with pytest.raises(ProtectedRecord):
        render.pdf_page_sizes(protected_pdf())
    # Only an owner password (printing, copying restrictions): opens like any other PDF.
    assert render.pdf_page_count(protected_pdf(user_password="")) == 1
    with pytest.raises(UnreadableRecord, match="damaged"):
        render.pdf_page_count(damaged_pdf())
    cut_short = report_pdf(3)[:900] + b"\n%%EOF\n"  # ends properly, its middle is missing
    with pytest.raises(UnreadableRecord, match="damaged"):
        render.render_pdf_page(cut_short, page=1, width_px=300)


def test_a_page_much_longer_than_wide_is_refused_before_it_is_drawn():
    writer = PdfWriter()
    writer.add_blank_page(width=100, height=14_400)
    out = io.BytesIO()
    writer.write(out)
    assert render.render_pdf_page(out.getvalue(), page=1, width_px=200).height == 28_800
    with pytest.raises(RecordTooLarge, match="too large"):
        render.render_pdf_page(out.getvalue(), page=1, width_px=1200)


def test_documents_with_too_many_pages_are_not_shown(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(render, "MAX_PAGES", 2)
    with pytest.raises(RecordTooLarge, match="more than 2 pages"):
        render.pdf_page_count(report_pdf(3))


def test_a_phone_photo_is_upright_and_keeps_none_of_its_metadata():
    data = phone_photo()
    assert render.photo_size(data, max_pixels=MAX_PIXELS) == (40, 80)
    photo = render.render_photo(data, width_px=1200, max_pixels=MAX_PIXELS)  # never enlarged
    image = decoded(photo.data)
    assert photo.media_type == "image/jpeg" and image.format == "JPEG"
    assert image.size == (photo.width, photo.height) == (40, 80)
    assert not image.getexif() and not {"exif", "icc_profile", "comment", "xmp"} & set(image.info)
    for secret in (b"Exif", b"acsp", b"Dr House", TRAILER, b"GPS"):
        assert secret not in photo.data
    top, bottom = rgb_at(image, 20, 10), rgb_at(image, 20, 70)
    assert top[0] > 180 and top[2] < 60, top  # red on top
    assert bottom[2] > 180 and bottom[0] < 60, bottom
    assert render.render_photo(data, width_px=1200, max_pixels=MAX_PIXELS).data == photo.data


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_comes_out_upright(orientation: int):
    upright = Image.new("RGB", (60, 30), (255, 255, 255))
    upright.paste((255, 0, 0), (0, 0, 20, 10))  # a red mark in the top left corner
    upright.paste((0, 0, 255), (40, 20, 60, 30))  # a blue one bottom right
    undo = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
    stored = (
        upright.transpose(undo.get(orientation, render._UPRIGHT[orientation]))
        if orientation > 1
        else upright
    )
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    photo = render.render_photo(png_bytes(stored, exif=exif), width_px=600, max_pixels=MAX_PIXELS)
    assert photo.media_type == "image/png"
    assert np.array_equal(np.asarray(decoded(photo.data)), np.asarray(upright))


@pytest.mark.parametrize(
    ("image", "mode"),
    [
        (Image.new("RGBA", (50, 20), (255, 0, 0, 0)), "RGB"),  # transparent: white
        (Image.new("LA", (50, 20), (0, 0)), "RGB"),
        (Image.new("P", (50, 20), 3), "RGB"),
        (Image.new("1", (50, 20), 1), "L"),
        (Image.new("L", (50, 20), 77), "L"),
        (Image.new("I;16", (50, 20), 0x8012), "L"),
    ],
    ids=lambda value: getattr(value, "mode", value),
)
def test_photo_modes_become_grey_or_rgb(image: Image.Image, mode: str):
    photo = decoded(render.render_photo(png_bytes(image), width_px=200, max_pixels=MAX_PIXELS).data)
    assert photo.mode == mode and photo.size == (50, 20)
    if image.mode in {"RGBA", "LA"}:
        assert np.asarray(photo).min() == 255
    if image.mode == "I;16":
        assert np.asarray(photo).max() == 0x80


def test_large_photos_are_made_smaller_and_cmyk_becomes_rgb():
    out = io.BytesIO()
    Image.new("CMYK", (3000, 1000), (0, 255, 255, 0)).save(out, "JPEG")
    photo = render.render_photo(out.getvalue(), width_px=1200, max_pixels=MAX_PIXELS)
    image = decoded(photo.data)
    assert image.mode == "RGB" and (photo.width, photo.height) == image.size == (1200, 400)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes = b"") -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b""))


def test_damaged_photos_and_pixel_bombs_raise_errors_a_person_can_read():
    with pytest.raises(RecordTooLarge, match="too many pixels"):
        render.render_photo(_png_header_only(20_000, 20_000), width_px=400, max_pixels=MAX_PIXELS)
    with pytest.raises(UnreadableRecord, match="damaged"):
        no_picture = _png_header_only(400, 300)
        render.render_photo(no_picture, width_px=400, max_pixels=MAX_PIXELS)
    with pytest.raises(UnreadableRecord, match="damaged"):
        render.render_photo(samples.jpeg(400, 300)[:300], width_px=400, max_pixels=MAX_PIXELS)
    with pytest.raises(UnreadableRecord, match="damaged"):
        render.photo_size(b"not a picture at all", max_pixels=MAX_PIXELS)


# The API and the page, on real storage -----------------------------------------------------


def upload(client: TestClient, who: Account, case_id: str, name: str, data: bytes) -> str:
    response = client.post(
        f"/api/cases/{case_id}/files",
        files=[("files", (name, data, "application/octet-stream"))],
        headers=who.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == [], response.json()
    return str(response.json()["accepted"][0]["id"])


def page_of(
    client: TestClient, who: Account | None, case_id: str, file_id: str, page: int, **query: Any
) -> Any:
    return client.get(
        f"/api/cases/{case_id}/records/{file_id}/pages/{page}",
        params=query,
        headers=who.headers if who else None,
    )


def record_of(client: TestClient, who: Account | None, case_id: str, file_id: str) -> Any:
    return client.get(
        f"/api/cases/{case_id}/records/{file_id}", headers=who.headers if who else None
    )


def record_views(db: Session, file_id: str) -> list[AuditEvent]:
    db.expire_all()
    events = list(
        db.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "record.view")
            .where(AuditEvent.entity_id == file_id)
            .order_by(col(AuditEvent.id))
        ).all()
    )
    db.commit()  # end the read: SQLite transactions here hold the write lock
    return events


@pytest.fixture
def patient(accounts: Accounts) -> Account:
    return accounts.patient()


@pytest.fixture
def case(client: TestClient, patient: Account) -> dict[str, Any]:
    return open_case(client, patient)


def test_a_three_page_report_is_shown_as_three_page_images(
    client: TestClient, app: FastAPI, patient: Account, case: dict[str, Any]
):
    original = report_pdf(3)
    file_id = upload(client, patient, case["id"], "blood tests.pdf", original)
    record = record_of(client, patient, case["id"], file_id)
    assert record.status_code == 200, record.text
    view = record.json()
    assert (view["filename"], view["kind"], view["page_count"], view["size"]) == (
        "blood tests.pdf",
        "pdf",
        3,
        len(original),
    )
    assert view["problem"] is None and view["media_type"] == "image/png"
    assert [(p["number"], p["width"], p["height"]) for p in view["pages"]] == [
        (n, 1200, 1698) for n in (1, 2, 3)
    ]
    pages = []
    for number in (1, 2, 3):
        response = page_of(client, patient, case["id"], file_id, number, width=800)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["content-disposition"] == f'inline; filename="page-{number}.png"'
        assert response.headers["x-content-type-options"] == "nosniff"
        assert decoded(response.content).size == (800, 1132)
        pages.append(response.content)
    assert len(set(pages)) == 3
    for page in pages:  # what the browser gets was drawn by us, not copied from the PDF
        assert b"%PDF" not in page and b"Haemoglobin" not in page
        assert all(original[i : i + 24] not in page for i in range(0, len(original) - 24, 24))
    app.state.records = RecordState()  # forget everything: render again from storage
    again = page_of(client, patient, case["id"], file_id, 2, width=800)
    assert again.content == pages[1]


def test_viewing_a_record_is_audited_once_per_sign_in(
    client: TestClient, accounts: Accounts, patient: Account, case: dict[str, Any], db: Session
):
    file_id = upload(client, patient, case["id"], "report.pdf", report_pdf(3))
    assert record_views(db, file_id) == []
    assert record_of(client, patient, case["id"], file_id).status_code == 200
    for number in (1, 2, 3, 1):
        assert page_of(client, patient, case["id"], file_id, number).status_code == 200
    (event,) = record_views(db, file_id)
    assert (event.entity_type, event.case_id, event.actor_id) == (
        "file",
        uuid.UUID(case["id"]),
        patient.user_id,
    )
    assert '"via":"record"' in event.details
    accounts.sign_in(patient)  # a new sign-in session is recorded anew
    assert page_of(client, patient, case["id"], file_id, 2).status_code == 200
    assert len(record_views(db, file_id)) == 2
    # A page outside the document shows nothing, so it is not recorded as a view.
    other = upload(client, patient, case["id"], "other.pdf", report_pdf(1))
    assert page_of(client, patient, case["id"], other, 2).status_code == 404
    assert record_views(db, other) == []


def test_a_phone_photo_arrives_upright_without_location_or_profile(
    client: TestClient, patient: Account, case: dict[str, Any]
):
    file_id = upload(client, patient, case["id"], "IMG_0412.jpg", phone_photo())
    view = record_of(client, patient, case["id"], file_id).json()
    assert (view["kind"], view["page_count"], view["media_type"]) == ("jpeg", 1, "image/jpeg")
    assert [(p["width"], p["height"]) for p in view["pages"]] == [(40, 80)]
    response = page_of(client, patient, case["id"], file_id, 1)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    image = decoded(response.content)
    assert image.size == (40, 80) and not image.getexif() and "icc_profile" not in image.info
    assert b"Exif" not in response.content and TRAILER not in response.content
    assert rgb_at(image, 20, 10)[0] > 180 and rgb_at(image, 20, 70)[2] > 180
    second = page_of(client, patient, case["id"], file_id, 2)
    assert second.status_code == 404 and second.json() == {"detail": "A photo has one page: 1."}
    png_id = upload(client, patient, case["id"], "scan.png", samples.png(300, 200))
    png = page_of(client, patient, case["id"], png_id, 1, width=200)
    assert png.headers["content-type"] == "image/png" and decoded(png.content).size == (200, 133)


def test_protected_and_damaged_pdfs_explain_themselves(
    client: TestClient, patient: Account, case: dict[str, Any]
):
    for name, data, words in (
        ("locked.pdf", protected_pdf(), "protected by a password"),
        ("broken.pdf", damaged_pdf(), "damaged"),
    ):
        file_id = upload(client, patient, case["id"], name, data)
        view = record_of(client, patient, case["id"], file_id)
        assert view.status_code == 200 and words in view.json()["problem"]
        assert view.json()["pages"] == [] and view.json()["page_count"] == 0
        response = page_of(client, patient, case["id"], file_id, 1)
        assert response.status_code == 415 and words in response.json()["detail"]
        content = client.get(
            f"/api/cases/{case['id']}/files/{file_id}/content", headers=patient.headers
        )
        assert content.content == data  # the original can still be downloaded


def test_pages_and_widths_outside_the_limits(
    client: TestClient, patient: Account, case: dict[str, Any]
):
    file_id = upload(client, patient, case["id"], "report.pdf", report_pdf(3))
    for number in (0, 4, 99):
        response = page_of(client, patient, case["id"], file_id, number)
        assert response.status_code == 404
        assert response.json() == {"detail": "This document has 3 pages, numbered 1 to 3."}
    for width in (199, 2001, -5):
        response = page_of(client, patient, case["id"], file_id, 1, width=width)
        assert response.status_code == 422 and "between 200 and 2000" in response.json()["detail"]
    assert page_of(client, patient, case["id"], file_id, 1, width="wide").status_code == 422
    for width in (200, 2000):
        response = page_of(client, patient, case["id"], file_id, 1, width=width)
        assert decoded(response.content).width == width


def test_who_may_see_a_record(client: TestClient, accounts: Accounts, patient, case):
    file_id = upload(client, patient, case["id"], "report.pdf", report_pdf(1))
    dicom_id = upload(client, patient, case["id"], "ct.dcm", samples.dicom())
    stranger = accounts.patient()
    strangers_case = open_case(client, stranger)
    strangers_file = upload(client, stranger, strangers_case["id"], "mine.pdf", report_pdf(1))

    def first_page(client: TestClient, who: Account | None, case_id: str, file_id: str) -> Any:
        return page_of(client, who, case_id, file_id, 1)

    for call in (record_of, first_page):
        assert call(client, None, case["id"], file_id).status_code == 401
        hidden = call(client, stranger, case["id"], file_id)
        missing = call(client, stranger, str(uuid.uuid4()), file_id)
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json() == missing.json() == {"detail": "Case not found."}
        for other_file in (strangers_file, str(uuid.uuid4())):  # not a file of this case
            response = call(client, patient, case["id"], other_file)
            assert response.status_code == 404 and response.json() == {"detail": "File not found."}
        dicom = call(client, patient, case["id"], dicom_id)
        assert dicom.status_code == 415 and "image viewer" in dicom.json()["detail"]
    coordinator = accounts.staff(Role.coordinator)
    specialist = accounts.staff(Role.specialist)
    assert page_of(client, coordinator, case["id"], file_id, 1).status_code == 403  # a draft
    submit_case(client, patient, case["id"])
    assert page_of(client, coordinator, case["id"], file_id, 1).status_code == 200
    assert page_of(client, specialist, case["id"], file_id, 1).status_code == 404


def test_large_originals_are_not_kept(
    client: TestClient, app: FastAPI, patient, case, monkeypatch: pytest.MonkeyPatch
):
    file_id = upload(client, patient, case["id"], "report.pdf", report_pdf(3))
    photo_id = upload(client, patient, case["id"], "photo.jpg", phone_photo())
    whole = [page_of(client, patient, case["id"], file_id, n).content for n in (1, 3)]
    photo = page_of(client, patient, case["id"], photo_id, 1).content
    app.state.records = RecordState()
    monkeypatch.setattr(service, "WHOLE_RECORD_LIMIT", 0)
    assert [page_of(client, patient, case["id"], file_id, n).content for n in (1, 3)] == whole
    assert page_of(client, patient, case["id"], photo_id, 1).content == photo
    assert len(app.state.records.originals) == 0


class Images(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs))


def test_the_record_page_shows_pages_as_images_and_offers_the_original(
    client: TestClient, accounts: Accounts, patient, case
):
    file_id = upload(client, patient, case["id"], "discharge summary.pdf", report_pdf(25))
    photo_id = upload(client, patient, case["id"], "IMG_0412.jpg", phone_photo())
    locked_id = upload(client, patient, case["id"], "locked.pdf", protected_pdf())
    dicom_id = upload(client, patient, case["id"], "ct.dcm", samples.dicom())
    address = f"/cases/{case['id']}/records/{file_id}"
    anonymous = client.get(address, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    browser_sign_in(client, patient)

    response = client.get(address)
    assert response.status_code == 200
    page = check_page(response)
    assert f"/api/cases/{case['id']}/files/{file_id}/content" in page.links
    assert "?first=21" in page.links and "discharge summary.pdf" in response.text
    images = Images(response.text).images
    api = f"/api/cases/{case['id']}/records/{file_id}/pages"
    assert [img["src"] for img in images] == [f"{api}/{n}?width=1200" for n in range(1, 21)]
    assert {(img["loading"], img["width"], img["height"]) for img in images} == {
        ("lazy", "880", "1245")
    }
    assert client.get(images[0]["src"] or "").headers["content-type"] == "image/png"  # cookie
    rest = check_page(client.get(address, params={"first": 21}))
    assert "?first=1" in rest.links and "?first=41" not in rest.links
    assert len(Images(client.get(address, params={"first": 23}).text).images) == 5

    photo = client.get(f"/cases/{case['id']}/records/{photo_id}")
    check_page(photo)
    (img,) = Images(photo.text).images
    assert (img["width"], img["height"]) == ("40", "80")
    locked = client.get(f"/cases/{case['id']}/records/{locked_id}")
    check_page(locked)
    assert "protected by a password" in locked.text and not Images(locked.text).images
    dicom = client.get(f"/cases/{case['id']}/records/{dicom_id}")
    assert dicom.status_code == 415 and "image viewer" in dicom.text
    check_page(dicom)

    case_page = client.get(f"/cases/{case['id']}")
    links = check_page(case_page).links
    for record_id in (file_id, photo_id, locked_id):
        assert f"/cases/{case['id']}/records/{record_id}" in links
    assert f"/cases/{case['id']}/records/{dicom_id}" not in links
    previews = [img["src"] for img in Images(case_page.text).images]
    assert f"/api/cases/{case['id']}/records/{photo_id}/pages/1?width=200" in previews

    stranger = accounts.patient()
    client.cookies.clear()
    browser_sign_in(client, stranger)
    hidden = client.get(address)
    assert hidden.status_code == 404 and "Case not found." in hidden.text
