"""The Orthanc peer on its own: it holds the samples, and departs from PS3.18 only as documented.

Every QIDO-RS search and every WADO-RS metadata resource is checked against what the files
themselves say (pydicom's reading, plus counts and paths worked out from the sample set) and
against the return keys of PS3.18 Tables 10.6.3-3 to -5. What Orthanc does otherwise must be
exactly ``PEER_DEVIATIONS``: the conformance test leans on that table, so it may not go stale.
"""

from __future__ import annotations

import pytest

from tests.dicomweb import return_keys
from tests.dicomweb.compare import against_reference, malformed
from tests.dicomweb.peer import DICOMWEB_ROOT, PEER_DEVIATIONS, OrthancPeer, PeerRequest
from tests.dicomweb.samples import Catalogue, file_json

pytestmark = pytest.mark.orthanc


def test_peer_holds_every_sample(peer: OrthancPeer, catalogue: Catalogue):
    answered = peer.get_json(f"{DICOMWEB_ROOT}/instances")
    assert sorted(result["00080018"]["Value"][0] for result in answered) == catalogue.instances
    studies = peer.get_json(f"{DICOMWEB_ROOT}/studies")
    assert sorted(result["0020000D"]["Value"][0] for result in studies) == catalogue.studies


def measured_deviations(peer: OrthancPeer, catalogue: Catalogue) -> dict[tuple[str, str], str]:
    """(what was asked, tag) → one example of how the peer's answer departs from the reference."""
    found: dict[tuple[str, str], str] = {}
    for target, path, unique in catalogue.searches():
        for result in peer.get_json(f"{DICOMWEB_ROOT}{path}"):
            reference = catalogue.reference(result[unique]["Value"][0])
            keys = return_keys.search_keys(target)
            for difference in against_reference(result, reference, keys):
                found.setdefault((target, difference.tag), f"{path}: {difference.text}")
            for problem in malformed(result):
                found.setdefault(("json", problem[:8]), f"{path}: {problem}")
    for path, _level in catalogue.metadata():
        for instance in peer.get_json(f"{DICOMWEB_ROOT}{path}"):
            reference = file_json(catalogue.path(instance["00080018"]["Value"][0]))
            every_attribute = {tag: "R" for tag in reference if not tag.startswith("0002")}
            for difference in against_reference(instance, reference, every_attribute):
                found.setdefault(("metadata", difference.tag), f"{path}: {difference.text}")
            for problem in malformed(instance):
                found.setdefault(("json", problem[:8]), f"{path}: {problem}")
    return found


def test_peer_departs_from_the_standard_only_as_documented(peer: OrthancPeer, catalogue: Catalogue):
    found = measured_deviations(peer, catalogue)
    print("\nOrthanc's departures from PS3.18 on the samples (docs/dicomweb-conformance.md):")
    for (target, tag), example in sorted(found.items()):
        print(f"  {target:17} {tag}  {example[:160]}")
    undocumented = {key: found[key] for key in found.keys() - PEER_DEVIATIONS.keys()}
    no_longer = sorted(PEER_DEVIATIONS.keys() - found.keys())
    assert not undocumented, f"new departures, add them to PEER_DEVIATIONS: {undocumented}"
    assert not no_longer, f"no longer seen, remove them from PEER_DEVIATIONS: {no_longer}"


def test_peer_serves_frames_as_a_viewer_asks(peer: OrthancPeer, catalogue: Catalogue):
    """One native CT frame, in the form the benchmark and viewers ask for (PS3.18 8.7.3.3.2)."""
    study, series, sop = next(key for key in sorted(catalogue.files) if "12322" in key[2])
    (answer,) = peer.request(
        [
            PeerRequest(
                f"{DICOMWEB_ROOT}/studies/{study}/series/{series}/instances/{sop}/frames/1",
                headers={
                    "Accept": 'multipart/related; type="application/octet-stream"; '
                    "transfer-syntax=*"
                },
            )
        ]
    )
    assert answer.status == 200, answer.content[:300]
    assert answer.headers["content-type"].startswith("multipart/related")
    assert len(answer.content) > 128 * 128 * 2  # CT_small.dcm: 128x128, 16 bits, and headers
