"""The real ``dicomweb-client`` against a case's DICOMweb, over HTTP, on SeaweedFS and both
databases: store, search, retrieve (byte-identical), metadata, frames, rendered, and who may."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from email.parser import BytesParser
from email.policy import HTTP
from io import BytesIO
from pathlib import Path

import httpx
import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import generate_frames
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from sqlmodel import Session

from portal.cases.consent import CURRENT_VERSION
from portal.db import utcnow
from portal.dicomweb.models import DicomwebToken
from tests.fixtures.app import Account, Accounts, open_case
from tests.fixtures.live import LiveServer

pytestmark = [pytest.mark.seaweedfs]

CYRILLIC = "Иванова^Ольга"


def ct_series(count: int = 4) -> list[Dataset]:
    """A small CT series of a patient with a Cyrillic name (UTF-8), 32² pixels."""
    study, series = generate_uid(), generate_uid()
    out = []
    for i in range(count):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(f"ct{i}.dcm", Dataset(), file_meta=meta, preamble=b"\0" * 128)
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientName, ds.PatientID = CYRILLIC, "RU-77"
        ds.StudyDate, ds.StudyTime, ds.Modality = "20261015", "101500", "CT"
        ds.AccessionNumber, ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "A-17", "1", 3, i + 1
        ds.Rows = ds.Columns = 32
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = (np.arange(32 * 32, dtype=np.uint16) * (i + 1) % 4096).tobytes()
        out.append(ds)
    return out


def parts_of(response: httpx.Response) -> list[tuple[str, bytes]]:
    """The parts of a multipart/related answer: (content type, bytes)."""
    head = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + response.content)
    return [
        (part.get_content_type(), part.get_payload(decode=True)) for part in message.iter_parts()
    ]


@pytest.fixture
def world(live: LiveServer, accounts: Accounts, client):
    owner = accounts.patient()
    case = open_case(client, owner)
    consented = client.post(
        f"/api/cases/{case['id']}/consent",
        json={"accepted": True, "version": CURRENT_VERSION},
        headers=owner.headers,
    )
    assert consented.status_code == 201, consented.text
    root = f"{live.url}/api/cases/{case['id']}/dicomweb"
    return owner, case, root


def web(root: str, account: Account | str) -> DICOMwebClient:
    token = account if isinstance(account, str) else account.token
    return DICOMwebClient(url=root, headers={"Authorization": f"Bearer {token}"})


def test_store_search_and_retrieve_a_series_with_a_cyrillic_name(world):
    owner, _case, root = world
    series = ct_series()
    stored = web(root, owner).store_instances(series)
    referenced = stored.ReferencedSOPSequence
    assert {item.ReferencedSOPInstanceUID for item in referenced} == {
        ds.SOPInstanceUID for ds in series
    }
    assert "FailedSOPSequence" not in stored

    client = web(root, owner)
    studies = client.search_for_studies(search_filters={"PatientName": "иванова*"})
    assert len(studies) == 1
    study = studies[0]
    assert study["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": CYRILLIC}]}
    assert study["00201208"]["Value"] == [4]  # NumberOfStudyRelatedInstances
    assert study["00080061"]["Value"] == ["CT"]  # ModalitiesInStudy
    assert client.search_for_studies(search_filters={"StudyDate": "20261001-20261031"})
    assert not client.search_for_studies(search_filters={"StudyDate": "20250101-20250131"})
    assert client.search_for_studies(search_filters={"ModalitiesInStudy": "CT"})
    assert not client.search_for_studies(search_filters={"ModalitiesInStudy": "MR"})
    assert not client.search_for_studies(search_filters={"PatientName": "Петров*"})

    study_uid, series_uid = series[0].StudyInstanceUID, series[0].SeriesInstanceUID
    found = client.search_for_series(study_uid, search_filters={"Modality": "CT"})
    assert [s["0020000E"]["Value"][0] for s in found] == [series_uid]
    instances = client.search_for_instances(study_uid, series_uid)
    assert [i["00200013"]["Value"][0] for i in instances] == [1, 2, 3, 4]
    assert len(client.search_for_instances(study_uid, series_uid, limit=2, offset=1)) == 2

    # Retrieved byte for byte as stored.
    first = series[0]
    response = httpx.get(
        f"{root}/studies/{study_uid}/series/{series_uid}/instances/{first.SOPInstanceUID}",
        headers={**owner.headers, "Accept": 'multipart/related; type="application/dicom"'},
    )
    assert response.status_code == 200, response.text
    [(part_type, body)] = parts_of(response)
    assert part_type == "application/dicom"
    uploaded = httpx.get(f"{root.rsplit('/dicomweb', 1)[0]}/files", headers=owner.headers).json()[
        "items"
    ]
    assert hashlib.sha256(body).hexdigest() in {f["sha256"] for f in uploaded}
    assert dcmread(BytesIO(body)).SOPInstanceUID == first.SOPInstanceUID
    whole = client.retrieve_series(study_uid, series_uid)
    assert sorted(ds.SOPInstanceUID for ds in whole) == sorted(ds.SOPInstanceUID for ds in series)

    metadata = client.retrieve_series_metadata(study_uid, series_uid)
    assert len(metadata) == 4
    assert "BulkDataURI" in metadata[0]["7FE00010"]
    assert metadata[0]["00100010"]["Value"][0]["Alphabetic"] == CYRILLIC

    frames = client.retrieve_instance_frames(
        study_uid, series_uid, first.SOPInstanceUID, frame_numbers=[1]
    )
    assert frames == [first.PixelData]
    jpeg = client.retrieve_instance_rendered(
        study_uid, series_uid, first.SOPInstanceUID, media_types=("image/jpeg",)
    )
    assert jpeg[:2] == b"\xff\xd8"


@pytest.mark.parametrize(
    "name", ["JPEG2000.dcm", "SC_rgb_rle.dcm", "emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm"]
)
def test_frames_in_the_stored_syntax_and_decoded(world, name):
    owner, _case, root = world
    path = Path(get_testdata_file(name))
    ds = dcmread(path)
    client = web(root, owner)
    client.store_instances([ds])
    uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    count = int(ds.get("NumberOfFrames", 1))
    last = count
    url = f"{root}/studies/{uids[0]}/series/{uids[1]}/instances/{uids[2]}/frames/{last}"
    stored = httpx.get(
        url,
        headers={
            **owner.headers,
            "Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=*',
        },
    )
    assert stored.status_code == 200, stored.text
    [(_, body)] = parts_of(stored)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        expected = list(generate_frames(ds.PixelData, number_of_frames=count))[last - 1]
        assert body.rstrip(b"\0") == expected.rstrip(b"\0")
    else:
        size = len(ds.PixelData) // count
        assert body == ds.PixelData[(last - 1) * size : last * size]
    native = httpx.get(
        url,
        headers={**owner.headers, "Accept": 'multipart/related; type="application/octet-stream"'},
    )
    assert native.status_code == 200, native.text
    [(_, pixels)] = parts_of(native)
    array = ds.pixel_array if count == 1 else ds.pixel_array[last - 1]
    assert np.array_equal(
        np.frombuffer(pixels, dtype=array.dtype.newbyteorder("<")).reshape(array.shape), array
    )


def test_another_patient_finds_nothing_anywhere(world, accounts: Accounts):
    owner, _case, root = world
    series = ct_series(1)
    web(root, owner).store_instances(series)
    stranger = accounts.patient()
    uids = (series[0].StudyInstanceUID, series[0].SeriesInstanceUID, series[0].SOPInstanceUID)
    paths = [
        "/studies",
        "/series",
        f"/studies/{uids[0]}",
        f"/studies/{uids[0]}/metadata",
        f"/studies/{uids[0]}/series/{uids[1]}/instances/{uids[2]}/frames/1",
        f"/studies/{uids[0]}/series/{uids[1]}/instances/{uids[2]}/rendered",
    ]
    for path in paths:
        assert httpx.get(root + path, headers=stranger.headers).status_code == 404, path
    assert httpx.post(root + "/studies", headers=stranger.headers).status_code in {404, 415}
    with pytest.raises(requests.HTTPError) as refused:
        web(root, stranger).store_instances(series)
    assert refused.value.response.status_code == 404


def test_a_viewer_token_reads_this_case_only_and_can_be_revoked(world, client, app):
    owner, case, root = world
    series = ct_series(2)
    web(root, owner).store_instances(series)
    made = client.post(
        f"/api/cases/{case['id']}/dicomweb-tokens", json={"label": "Horos"}, headers=owner.headers
    )
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    assert made.json()["dicomweb_url"].endswith(f"/api/cases/{case['id']}/dicomweb")
    viewer = web(root, token)
    assert len(viewer.search_for_studies()) == 1
    assert viewer.retrieve_instance(
        series[0].StudyInstanceUID, series[0].SeriesInstanceUID, series[0].SOPInstanceUID
    )
    with pytest.raises(requests.HTTPError) as refused:
        viewer.store_instances(ct_series(1))
    assert refused.value.response.status_code == 403
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/me", headers=bearer).status_code == 401
    assert client.get(f"/api/cases/{case['id']}", headers=bearer).status_code == 401
    listed = client.get(f"/api/cases/{case['id']}/dicomweb-tokens", headers=owner.headers).json()
    assert [item["label"] for item in listed] == ["Horos"] and "token" not in listed[0]
    assert listed[0]["last_used_at"] is not None

    revoked = client.delete(
        f"/api/cases/{case['id']}/dicomweb-tokens/{made.json()['id']}", headers=owner.headers
    )
    assert revoked.status_code == 204
    assert httpx.get(root + "/studies", headers=bearer).status_code == 401

    again = client.post(f"/api/cases/{case['id']}/dicomweb-tokens", json={}, headers=owner.headers)
    with Session(app.state.engine) as db:
        row = db.get(DicomwebToken, uuid.UUID(again.json()["id"]))
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.add(row)
        db.commit()
    expired = {"Authorization": f"Bearer {again.json()['token']}"}
    assert httpx.get(root + "/studies", headers=expired).status_code == 401


def test_bad_queries_and_media_types_get_clear_4xx(world):
    owner, _case, root = world
    cases = [
        ("/studies?StudyDate=yesterday", {}, 400),
        ("/studies?limit=-1", {}, 400),
        ("/studies?NoSuchKeyword=1", {}, 400),
        ("/studies?StudyInstanceUID=1.2.abc", {}, 400),
        ("/studies", {"Accept": "application/dicom+xml"}, 406),
        ("/studies/1.2.3/series/4.5.6/instances/7.8.9/frames/0", {}, 400),
    ]
    for path, headers, status in cases:
        response = httpx.get(root + path, headers={**owner.headers, **headers})
        assert response.status_code == status, (path, response.text)
        assert response.json()["detail"]
    wrong = httpx.post(
        root + "/studies",
        content=b"x",
        headers={**owner.headers, "Content-Type": "application/dicom"},
    )
    assert wrong.status_code == 415
