"""Where the viewer lives among the portal's addresses; every OHIF URL is built here."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

SHELL_PREFIX = "/ohif/cases"
"""One viewer per case: ``/ohif/cases/{case_id}/…`` is the viewer's own route space."""
STATIC_PREFIX = "/ohif/dist"
"""The release's files, the same for every case: ``/ohif/dist/{version}/…``."""


def static_base(version: str) -> str:
    """The public path the installed bundle loads its chunks, workers, codecs and fonts from."""
    return f"{STATIC_PREFIX}/{version}/"


def shell_base(case_id: uuid.UUID) -> str:
    """The viewer's router base for one case (no trailing slash, as React Router wants it)."""
    return f"{SHELL_PREFIX}/{case_id}"


def dicomweb_root(case_id: uuid.UUID) -> str:
    """The case's DICOMweb service: QIDO-RS, WADO-RS and WADO-URI all live under it."""
    return f"/api/cases/{case_id}/dicomweb"


def viewer_url(case_id: uuid.UUID, study_uid: str) -> str:
    """The viewer opened on one study of a case (OHIF's default ``viewer`` mode)."""
    return f"{shell_base(case_id)}/viewer?{urlencode({'StudyInstanceUIDs': study_uid})}"
