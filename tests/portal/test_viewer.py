"""The viewer API on real uploads: series, frames as PNG, thumbnails, access and audit."""

from __future__ import annotations

import io
import uuid
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from pydicom import dcmread
from pydicom.uid import generate_uid
from sqlmodel import Session, col, select

from portal.accounts.models import Role
from portal.app import create_app
from portal.audit.models import AuditEvent
from portal.cases.models import Case
from portal.intake import service as intake_service
from portal.intake.models import CaseFile, DicomInstance
from portal.viewer import render, service
from portal.viewer.cache import dataset_cache, frame_cache
from tests.fixtures.app import Account, Accounts, open_case, submit_case
from tests.fixtures.uploads import upload_outcome
from tests.portal import samples
from tests.portal.test_render import KNOWN_UNDECODABLE, pixel_data_files

COMPRESSED = [
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline
    "JPGLosslessP14SV1_1s_1f_8b.dcm",  # JPEG lossless, first-order prediction
    "MR_small_jp2klossless.dcm",  # JPEG 2000 lossless
    "US1_J2KR.dcm",  # JPEG 2000 lossless, colour (YBR_RCT)
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "examples_ybr_color.dcm",  # JPEG baseline, 30 frames, YBR_FULL_422
]


def as_new_instance(name: str, *, series_uid: str | None = None, **attributes: Any) -> bytes:
    """A sample rewritten as a distinct instance (its own UIDs), with attributes changed."""
    ds = dcmread(samples.dicom_path(name))
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = series_uid or generate_uid()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def upload(client: TestClient, who: Account, case_id: str, *files: tuple[str, bytes]) -> None:
    response = client.post(
        f"/api/cases/{case_id}/files",
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
        headers=who.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == [], response.json()


def series_list(client: TestClient, who: Account, case_id: str) -> list[dict[str, Any]]:
    studies = client.get(f"/api/cases/{case_id}/studies", headers=who.headers).json()
    return [series for study in studies["studies"] for series in study["series"]]


def open_series(client: TestClient, who: Account, case_id: str, series_id: str) -> Any:
    response = client.get(f"/api/cases/{case_id}/series/{series_id}", headers=who.headers)
    assert response.status_code == 200, response.text
    return response.json()


def only_series(client: TestClient, who: Account, case_id: str) -> Any:
    (series,) = series_list(client, who, case_id)
    return open_series(client, who, case_id, series["id"])


def frame(
    client: TestClient, who: Account, case_id: str, instance_id: str, number: int = 1, **query: Any
) -> Any:
    return client.get(
        f"/api/cases/{case_id}/instances/{instance_id}/frames/{number}",
        params=query,
        headers=who.headers,
    )


def pixels(response: Any) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)))


def views_of(db: Session, case_id: str) -> list[AuditEvent]:
    db.expire_all()
    events = list(
        db.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "viewer.series")
            .where(AuditEvent.case_id == uuid.UUID(case_id))
            .order_by(col(AuditEvent.id))
        ).all()
    )
    db.commit()  # end the read: SQLite transactions here hold the write lock
    return events


def forget_images(app: FastAPI) -> None:
    """Empty the viewer's caches of parsed data sets and decoded frames."""
    app.state.viewer.datasets, app.state.viewer.frames = dataset_cache(), frame_cache()


@pytest.fixture
def patient(accounts: Accounts) -> Account:
    return accounts.patient()


@pytest.fixture
def case(client: TestClient, patient: Account) -> dict[str, Any]:
    return open_case(client, patient)


def test_a_ct_series_opens_and_presets_change_the_pixels(client, patient, case):
    upload(client, patient, case["id"], ("ct.dcm", samples.dicom("CT_small.dcm")))
    series = only_series(client, patient, case["id"])
    assert series["modality"] == "CT" and series["total_frames"] == 1
    assert [p["name"] for p in series["presets"]] == [
        "auto",
        "soft_tissue",
        "brain",
        "bone",
        "lung",
    ]
    assert series["default_window_source"] == "auto"  # CT_small carries no window of its own
    assert series["pixel_spacing"] == [0.661468, 0.661468] and series["pixel_aspect"] == 1.0
    assert series["orientation"] == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    (instance,) = series["instances"]
    assert (instance["frames"], instance["rows"], instance["columns"]) == (1, 128, 128)
    bone = frame(client, patient, case["id"], instance["id"], preset="bone")
    soft = frame(client, patient, case["id"], instance["id"], preset="soft_tissue")
    assert bone.headers["cache-control"] == "no-store"
    assert pixels(bone).shape == (128, 128)
    assert not np.array_equal(pixels(bone), pixels(soft))
    explicit = frame(client, patient, case["id"], instance["id"], center=400, width=1800)
    assert explicit.content == bone.content


def test_mr_shows_its_own_window_and_auto_on_request(client, patient, case):
    upload(
        client,
        patient,
        case["id"],
        ("mr.dcm", samples.dicom("MR_small.dcm")),
        ("emri.dcm", samples.dicom("emri_small.dcm")),
    )
    by_modality = {}
    for listed in series_list(client, patient, case["id"]):
        opened = open_series(client, patient, case["id"], listed["id"])
        by_modality[opened["instances"][0]["frames"]] = opened
    mr, emri = by_modality[1], by_modality[10]
    assert mr["default_window"] == {"center": 600.0, "width": 1600.0}
    assert mr["default_window_source"] == "image"
    assert [p["name"] for p in mr["presets"]] == ["auto"]  # Hounsfield presets are for CT
    instance = mr["instances"][0]["id"]
    own = pixels(frame(client, patient, case["id"], instance))
    auto = pixels(frame(client, patient, case["id"], instance, preset="auto"))
    assert not np.array_equal(own, auto)
    assert np.percentile(auto, 99) >= 250 and np.percentile(auto, 1) <= 5
    assert emri["default_window_source"] == "auto"


def test_monochrome1_is_shown_inverted(client, patient, case):
    upload(
        client,
        patient,
        case["id"],
        ("ct.dcm", samples.dicom("CT_small.dcm")),
        ("inverted.dcm", as_new_instance("CT_small.dcm", PhotometricInterpretation="MONOCHROME1")),
    )
    shown = {}
    for listed in series_list(client, patient, case["id"]):
        instance = open_series(client, patient, case["id"], listed["id"])["instances"][0]
        shown[instance["sop_instance_uid"]] = pixels(
            frame(client, patient, case["id"], instance["id"])
        )
    original = shown.pop(dcmread(samples.dicom_path("CT_small.dcm")).SOPInstanceUID)
    (inverted,) = shown.values()
    assert np.array_equal(original.astype(int) + inverted, np.full(original.shape, 255))


def test_multiframe_frames_are_numbered_from_one_and_differ(client, patient, case):
    upload(client, patient, case["id"], ("emri.dcm", samples.dicom("emri_small.dcm")))
    series = only_series(client, patient, case["id"])
    instance = series["instances"][0]["id"]
    assert series["total_frames"] == 10
    frames = [
        pixels(frame(client, patient, case["id"], instance, n)).tobytes() for n in range(1, 11)
    ]
    assert len(set(frames)) == 10
    for outside in (0, 11, -1):
        missing = frame(client, patient, case["id"], instance, outside)
        assert missing.status_code == 404
        assert missing.json() == {"detail": "This image has 10 frames, numbered 1 to 10."}


def test_viewing_is_audited_once_per_sign_in_and_series(client, patient, case, db, accounts):
    upload(client, patient, case["id"], ("emri.dcm", samples.dicom("emri_small.dcm")))
    series = only_series(client, patient, case["id"])
    instance = series["instances"][0]["id"]
    for number in range(1, 11):
        assert frame(client, patient, case["id"], instance, number).status_code == 200
    thumb = client.get(
        f"/api/cases/{case['id']}/series/{series['id']}/thumbnail", headers=patient.headers
    )
    assert thumb.status_code == 200
    (viewed,) = views_of(db, case["id"])
    assert (viewed.entity_type, viewed.entity_id) == ("series", series["id"])
    assert viewed.actor_id == patient.user_id and viewed.details == '{"via":"series"}'
    accounts.sign_in(patient)  # a new sign-in session views the series again
    assert frame(client, patient, case["id"], instance, 3).status_code == 200
    assert [e.details for e in views_of(db, case["id"])] == ['{"via":"series"}', '{"via":"frame"}']


def test_a_second_replica_knows_the_series_was_already_audited(client, patient, case, db, settings):
    """The first-view mark lives in the database: another process writes no second row."""
    upload(client, patient, case["id"], ("emri.dcm", samples.dicom("emri_small.dcm")))
    series = only_series(client, patient, case["id"])
    instance = series["instances"][0]["id"]
    with TestClient(create_app(settings), base_url="http://testserver") as replica:
        assert frame(replica, patient, case["id"], instance, 2).status_code == 200
    assert [e.details for e in views_of(db, case["id"])] == ['{"via":"series"}']


def test_compressed_transfer_syntaxes_render(client, patient, case):
    files = [(name, as_new_instance(name)) for name in COMPRESSED]
    upload(client, patient, case["id"], ("MR_small.dcm", as_new_instance("MR_small.dcm")), *files)
    rendered = {}
    for listed in series_list(client, patient, case["id"]):
        opened = open_series(client, patient, case["id"], listed["id"])
        assert opened["problem"] is None
        instance = opened["instances"][0]
        assert instance["decodable"] is True
        response = frame(client, patient, case["id"], instance["id"], instance["frames"])
        rendered[instance["sop_instance_uid"]] = (pixels(response), response.content)
    assert len(rendered) == len(COMPRESSED) + 1
    mr_pngs = {
        content
        for image, content in rendered.values()
        if image.shape == (64, 64)  # MR_small and its three lossless encodings
    }
    assert len(mr_pngs) == 1


def test_a_compression_the_viewer_cannot_decode_answers_415(client, patient, case):
    upload(client, patient, case["id"], ("lossy.dcm", samples.dicom("JPEG-lossy.dcm")))
    series = only_series(client, patient, case["id"])
    assert "could not be decoded" in series["problem"]
    response = frame(client, patient, case["id"], series["instances"][0]["id"])
    assert response.status_code == 415
    assert "JPEG Extended" in response.json()["detail"]


@pytest.mark.filterwarnings("ignore::UserWarning")  # rewriting odd samples makes pydicom warn
def test_every_uploadable_sample_renders_or_is_refused_never_a_server_error(
    client, patient, case, db
):
    files = []
    for path in pixel_data_files():
        if path.stat().st_size <= 1024 * 1024:
            try:
                files.append((path.name, as_new_instance(path.name)))
            except Exception:  # samples pydicom cannot rewrite are sent as they are
                files.append((path.name, path.read_bytes()))
    response = client.post(
        f"/api/cases/{case['id']}/files",
        files=[("files", ("samples.zip", zip_of(files), "application/zip"))],
        headers=patient.headers,
    )
    assert response.status_code == 200, response.text
    (queued,) = response.json()["queued"]  # a ZIP is imported by a job, after the answer
    outcome = upload_outcome(
        lambda: client.get(queued["progress"], headers=patient.headers), timeout=300
    )
    assert outcome["status"] == "complete", outcome
    rows = [
        (instance, intake_service.file_name(session=db, case_file=case_file))
        for instance, case_file in db.exec(
            select(DicomInstance, CaseFile).join(
                CaseFile, col(CaseFile.id) == col(DicomInstance.file_id)
            )
        ).all()
    ]
    db.commit()  # end the read: SQLite transactions here hold the write lock
    assert len(rows) >= 80
    refused = {}
    for instance, filename in rows:
        answer = frame(client, patient, case["id"], str(instance.id), instance.number_of_frames)
        assert answer.status_code in (200, 415), (filename, answer.status_code, answer.text)
        if answer.status_code == 415:
            refused[filename.rpartition("/")[2]] = answer.json()["detail"]
    assert set(refused) <= set(KNOWN_UNDECODABLE), refused


def zip_of(files: list[tuple[str, bytes]]) -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            archive.writestr(name, data)
    return out.getvalue()


def test_non_square_pixels_are_served_square(client, patient, case):
    tall = as_new_instance("CT_small.dcm", PixelSpacing=[1.0, 0.5])
    upload(client, patient, case["id"], ("tall.dcm", tall))
    series = only_series(client, patient, case["id"])
    assert series["pixel_spacing"] == [1.0, 0.5] and series["pixel_aspect"] == 2.0
    image = pixels(frame(client, patient, case["id"], series["instances"][0]["id"]))
    assert image.shape == (256, 128)  # 128 rows 1 mm apart shown as tall as 128 columns x 2


def test_who_may_view(client: TestClient, accounts: Accounts, patient, case, db: Session):
    upload(client, patient, case["id"], ("ct.dcm", samples.dicom("CT_small.dcm")))
    series = only_series(client, patient, case["id"])
    instance = series["instances"][0]["id"]
    submit_case(client, patient, case["id"])  # until then the images are the patient's alone
    assigned, other_specialist = accounts.staff(Role.specialist), accounts.staff(Role.specialist)
    stored = db.get(Case, uuid.UUID(case["id"]))
    assert stored is not None
    stored.assigned_specialist_id = assigned.user_id
    db.add(stored)
    db.commit()
    paths = [
        f"/api/cases/{case['id']}/series/{series['id']}",
        f"/api/cases/{case['id']}/series/{series['id']}/thumbnail",
        f"/api/cases/{case['id']}/instances/{instance}/frames/1",
    ]
    callers = {
        "owner": (patient, 200),
        "assigned": (assigned, 200),
        "coordinator": (accounts.staff(Role.coordinator), 200),
        "admin": (accounts.staff(Role.admin), 403),  # only through break-glass
        "stranger": (accounts.patient(), 404),
        "other specialist": (other_specialist, 404),
    }
    for path in paths:
        assert client.get(path).status_code == 401, path
        for role, (who, expected) in callers.items():
            assert client.get(path, headers=who.headers).status_code == expected, (role, path)
    # An instance of another case, asked for under this case, is not found either.
    other_owner = accounts.patient()
    other_case = open_case(client, other_owner)
    upload(client, other_owner, other_case["id"], ("mr.dcm", samples.dicom("MR_small.dcm")))
    foreign = only_series(client, other_owner, other_case["id"])
    assert frame(client, patient, case["id"], foreign["instances"][0]["id"]).status_code == 404
    own_case_foreign_series = f"/api/cases/{case['id']}/series/{foreign['id']}"
    assert client.get(own_case_foreign_series, headers=patient.headers).status_code == 404


def test_the_same_frame_gives_the_same_bytes(client, patient, case, app: FastAPI):
    upload(client, patient, case["id"], ("ct.dcm", samples.dicom("CT_small.dcm")))
    instance = only_series(client, patient, case["id"])["instances"][0]["id"]
    first = frame(client, patient, case["id"], instance, preset="lung").content
    assert frame(client, patient, case["id"], instance, preset="lung").content == first
    forget_images(app)  # decrypted and parsed afresh
    assert frame(client, patient, case["id"], instance, preset="lung").content == first


def test_window_changes_reuse_the_decrypted_data_set(
    client, patient, case, app: FastAPI, monkeypatch
):
    upload(client, patient, case["id"], ("ct.dcm", samples.dicom("CT_small.dcm")))
    instance = only_series(client, patient, case["id"])["instances"][0]["id"]
    forget_images(app)
    vault, reads = app.state.vault, []
    original_open = vault.open

    def counting_open(**kwargs: Any) -> Any:
        reads.append(kwargs["object_key"])
        return original_open(**kwargs)

    monkeypatch.setattr(vault, "open", counting_open)
    for preset in ("bone", "lung", "brain", "soft_tissue"):
        assert frame(client, patient, case["id"], instance, preset=preset).status_code == 200
    assert len(reads) == 1


def test_window_changes_on_a_compressed_image_decode_it_once(client, patient, case, monkeypatch):
    upload(client, patient, case["id"], ("j2k.dcm", samples.dicom("MR_small_jp2klossless.dcm")))
    decoded = []
    original = render.pixel_array

    def counting(*args: Any, **kwargs: Any) -> Any:
        decoded.append(kwargs["index"])
        return original(*args, **kwargs)

    monkeypatch.setattr(render, "pixel_array", counting)
    instance = only_series(client, patient, case["id"])["instances"][0]["id"]  # decodes it
    windows = [{"preset": "auto"}, {"center": 500, "width": 1000}, {}]
    shown = [frame(client, patient, case["id"], instance, **w).content for w in windows]
    assert decoded == [0] and len(set(shown)) == 3


def test_large_instances_are_read_frame_by_frame(client, patient, case, app, monkeypatch):
    upload(client, patient, case["id"], ("emri.dcm", samples.dicom("emri_small.dcm")))
    instance = only_series(client, patient, case["id"])["instances"][0]["id"]
    whole = [frame(client, patient, case["id"], instance, n).content for n in (1, 5, 10)]
    forget_images(app)
    monkeypatch.setattr(service, "WHOLE_OBJECT_LIMIT", 0)
    by_range = [frame(client, patient, case["id"], instance, n).content for n in (1, 5, 10)]
    assert by_range == whole
    (entry,) = app.state.viewer.datasets.values()
    assert entry.whole is False and "PixelData" not in entry.dataset


@pytest.mark.parametrize(
    "query",
    [
        {"center": 40},
        {"width": 400},
        {"center": 40, "width": 0},
        {"center": "nan", "width": 400},
        {"center": 40, "width": "inf"},
        {"preset": "sepia"},
        {"preset": "bone", "center": 40, "width": 400},
        {"center": "forty", "width": 400},
    ],
)
def test_bad_window_values_answer_422(client, patient, case, query):
    upload(client, patient, case["id"], ("ct.dcm", samples.dicom("CT_small.dcm")))
    instance = only_series(client, patient, case["id"])["instances"][0]["id"]
    response = frame(client, patient, case["id"], instance, **query)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


def test_the_thumbnail_is_the_middle_image_small(client, patient, case):
    series_uid = generate_uid()
    slices = [  # each slice its own window, so each renders differently
        as_new_instance(
            "CT_small.dcm",
            series_uid=series_uid,
            InstanceNumber=n,
            WindowCenter=100 * n,
            WindowWidth=400,
        )
        for n in (3, 1, 2)
    ]
    upload(client, patient, case["id"], *[(f"{n}.dcm", data) for n, data in enumerate(slices)])
    series = only_series(client, patient, case["id"])
    assert [i["instance_number"] for i in series["instances"]] == [1, 2, 3]
    thumbnail = f"/api/cases/{case['id']}/series/{series['id']}/thumbnail"
    response = client.get(thumbnail, headers=patient.headers)
    assert response.headers["content-type"] == "image/png"
    middle = frame(client, patient, case["id"], series["instances"][1]["id"])
    assert response.content == middle.content  # 128 x 128 already: not scaled
    missing = f"/api/cases/{case['id']}/series/{uuid.uuid4()}/thumbnail"
    assert client.get(missing, headers=patient.headers).status_code == 404


def test_thumbnails_fit_in_128_pixels(client, patient, case):
    upload(client, patient, case["id"], ("us.dcm", samples.dicom("US1_UNCR.dcm")))
    series = only_series(client, patient, case["id"])
    response = client.get(
        f"/api/cases/{case['id']}/series/{series['id']}/thumbnail", headers=patient.headers
    )
    assert Image.open(io.BytesIO(response.content)).size == (128, 96)  # from 640 x 480
