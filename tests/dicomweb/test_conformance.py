"""The portal's DICOMweb answers, held to PS3.18 and to Orthanc's answers for the same files.

``portal serve`` (SQLite and PostgreSQL, real SeaweedFS) and Orthanc both hold the samples: the
case owner stores them with STOW-RS at the case's DICOMweb root using dicomweb-client, Orthanc
got them through its own POST /instances. Then every QIDO-RS search and every WADO-RS metadata
resource is asked of both, and each answer of the portal is checked three ways:

1. against the files and the sample set (return keys of Tables 10.6.3-3 to -5, values as pydicom
   reads them, counts, Retrieve URLs), which is what the standard asks;
2. attribute by attribute against Orthanc's answer, where Orthanc has the attribute and is not
   documented (``PEER_DEVIATIONS``, kept true by test_peer.py) to answer it wrongly;
3. for the form of DICOM JSON itself (PS3.18 F.2.2).

Any difference fails, unless ``ALLOWED_DIFFERENCES`` lists it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient

from portal.settings import Settings
from tests.dicomweb import return_keys
from tests.dicomweb.compare import against_reference, attribute_differences, malformed
from tests.dicomweb.peer import DICOMWEB_ROOT, PEER_DEVIATIONS, OrthancPeer
from tests.dicomweb.samples import Catalogue, file_json
from tests.fixtures.http_api import consent_to_case, create_case, register_patient
from tests.fixtures.live import ServerProcess
from tests.fixtures.logs import SensitiveValues

pytestmark = [pytest.mark.orthanc, pytest.mark.seaweedfs, pytest.mark.slow]

PASSWORD = "conformance passphrase 2026"

# Differences the portal may keep, keyed by (what was asked, tag) like PEER_DEVIATIONS: "json"
# for the form of DICOM JSON, "metadata" for WADO-RS metadata, else the search target
# ("studies", "study series", "series", "series instances", "instances"). Each entry says why,
# which paragraph of PS3.18 allows it, and has its paragraph in docs/dicomweb-conformance.md, e.g.
#     ("studies", "00080201"): "Timezone Offset From UTC: … (PS3.18 10.6.3.3.1, C: if known)",
ALLOWED_DIFFERENCES: dict[tuple[str, str], str] = {
    ("metadata", "FFFCFFFC"): (
        "Data Set Trailing Padding: metadata is read from the head of each object and stops at "
        "the pixel data; the padding after it has no meaning by definition (PS3.5 7.8), and "
        "reading past the pixel data would decrypt the whole object"
    ),
}


@pytest.fixture
def portal(settings: Settings, tmp_path: Path, sensitive: SensitiveValues) -> Iterator[str]:
    """``portal serve`` in its own process; its address."""
    server = ServerProcess(settings, tmp_path / "serve.log")
    sensitive.add_log_file(server.log)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def case_dicomweb(portal: str, sensitive: SensitiveValues) -> DICOMwebClient:
    """dicomweb-client on a new draft case's DICOMweb root, as its owner (consent given)."""
    patient = register_patient(portal, PASSWORD, full_name="Conformance Patient")
    sensitive.add(patient.email, patient.password, patient.full_name, patient.token)
    case_id = create_case(
        portal,
        patient.headers,
        subject="Second opinion on a CT",
        clinical_question="Is the finding on the CT typical?",
    )
    consent_to_case(portal, patient.headers, case_id)
    return DICOMwebClient(url=f"{portal}/api/cases/{case_id}/dicomweb", headers=patient.headers)


def test_portal_answers_dicomweb_as_the_standard_and_the_peer(
    case_dicomweb: DICOMwebClient,
    peer: OrthancPeer,
    catalogue: Catalogue,
    sample_paths: list[Path],
    sensitive: SensitiveValues,
):
    datasets = [pydicom.dcmread(path) for path in sample_paths]
    sensitive.add(*(str(ds.get("PatientName", "")) for ds in datasets))
    stored = case_dicomweb.store_instances(datasets)
    assert not stored.get("FailedSOPSequence"), stored
    referenced = sorted(item.ReferencedSOPInstanceUID for item in stored.ReferencedSOPSequence)
    assert referenced == catalogue.instances

    problems: dict[tuple[str, str], list[str]] = {}
    for target, path, unique in catalogue.searches():
        ours = search(case_dicomweb, target, path)
        theirs = {r[unique]["Value"][0]: r for r in peer.get_json(f"{DICOMWEB_ROOT}{path}")}
        uids = sorted(r.get(unique, {}).get("Value", ["?"])[0] for r in ours)
        if uids != sorted(theirs):
            note(problems, (target, unique), f"{path}: found {uids}, expected {sorted(theirs)}")
        for result in ours:
            uid = result.get(unique, {}).get("Value", ["?"])[0]
            keys = return_keys.search_keys(target)
            check(
                problems, target, path, result, theirs.get(uid, {}), catalogue.reference(uid), keys
            )

    for path, level in catalogue.metadata():
        theirs = {i["00080018"]["Value"][0]: i for i in peer.get_json(f"{DICOMWEB_ROOT}{path}")}
        for instance in metadata(case_dicomweb, level, path):
            sop = instance.get("00080018", {}).get("Value", ["?"])[0]
            if sop not in theirs:
                note(problems, ("metadata", "00080018"), f"{path}: an instance {sop} not stored")
                continue
            reference = file_json(catalogue.path(sop))
            every_attribute = {tag: "R" for tag in reference if not tag.startswith("0002")}
            check(problems, "metadata", path, instance, theirs[sop], reference, every_attribute)

    report = [
        f"{target} {tag}: {text}"
        for (target, tag), texts in sorted(problems.items())
        if (target, tag) not in ALLOWED_DIFFERENCES
        for text in texts[:3]
    ]
    print("\n".join(["", "DICOMweb conformance, differences:", *report]) if report else "")
    assert not report, f"{len(report)} difference(s) from PS3.18 or Orthanc, listed above"


def check(
    problems: dict[tuple[str, str], list[str]],
    target: str,
    path: str,
    ours: dict[str, Any],
    theirs: dict[str, Any],
    reference: dict[str, Any],
    keys: Mapping[str, str],
) -> None:
    """Note where ``ours`` departs from the reference, from the peer, or from F.2.2."""
    for difference in against_reference(ours, reference, keys):
        note(problems, (target, difference.tag), f"{path}: {difference.text}")
    for difference in attribute_differences(ours, theirs, set(keys), labels=("ours", "Orthanc")):
        peer_wrong = (target, difference.tag) in PEER_DEVIATIONS
        if difference.kind != "missing in theirs" and not peer_wrong:
            note(problems, (target, difference.tag), f"{path}: {difference.text}")
    for problem in malformed(ours):
        note(problems, ("json", problem[:8]), f"{path}: {problem}")


def note(problems: dict[tuple[str, str], list[str]], key: tuple[str, str], text: str) -> None:
    problems.setdefault(key, []).append(text)


def search(client: DICOMwebClient, target: str, path: str) -> list[dict[str, Any]]:
    """The portal's answer to one QIDO-RS search, asked through dicomweb-client."""
    parts = path.strip("/").split("/")
    if target == "studies":
        return list(client.search_for_studies())
    if target in {"series", "study series"}:
        study = parts[1] if target == "study series" else None
        return list(client.search_for_series(study_instance_uid=study))
    if target == "instances":
        return list(client.search_for_instances())
    return list(
        client.search_for_instances(study_instance_uid=parts[1], series_instance_uid=parts[3])
    )


def metadata(client: DICOMwebClient, level: str, path: str) -> list[dict[str, Any]]:
    """The portal's WADO-RS metadata of a study, series or instance, one object per instance."""
    parts = path.strip("/").split("/")
    if level == "study":
        return list(client.retrieve_study_metadata(parts[1]))
    if level == "series":
        return list(client.retrieve_series_metadata(parts[1], parts[3]))
    return [dict(client.retrieve_instance_metadata(parts[1], parts[3], parts[5]))]
