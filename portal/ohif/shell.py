"""What starts OHIF for one case: the portal's own configuration script and its CSP.

OHIF reads ``window.config`` before it boots. The portal writes it for each request, so the
one data source is the case's own DICOMweb service and nothing else can be reached: no study
list across cases, no other data sources or ``?url=`` sources, no upload, no sign-in of its own
(the portal's session cookie authenticates every DICOMweb request, which is same-origin), no
dialog linking out, no configuration or customization loaded from the URL.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from portal.ohif.urls import dicomweb_root, shell_base, static_base

DATA_SOURCE = "dicomweb"


def _policy(*, script_src: str) -> str:
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {script_src}",
            # OHIF's components inject <style> elements and style attributes as they render.
            "style-src 'self' 'unsafe-inline'",
            # Baseline JPEG frames are decoded by the browser from data: URLs; thumbnails and
            # rendered instances are shown from blob: URLs of bytes fetched from the portal.
            "img-src 'self' data: blob:",
            "font-src 'self'",
            "connect-src 'self'",
            # Compression and inference helpers start workers from blob: URLs made by OHIF's
            # own scripts; such a worker inherits this page's policy.
            "worker-src 'self' blob:",
            # Video and encapsulated PDF instances are shown from blob: URLs of their bytes.
            "media-src 'self' blob:",
            "object-src blob:",
            "frame-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )


OHIF_PAGE_CSP = _policy(script_src="'self' 'wasm-unsafe-eval'")
"""The viewer's page and configuration: scripts only from the portal, WebAssembly allowed
(decoders compile it), string evaluation forbidden."""
OHIF_WORKER_CSP = _policy(script_src="'self' 'wasm-unsafe-eval' 'unsafe-eval'")
"""The release's scripts. A web worker takes its policy from its own script's response, not
from the page: the DICOM decoders (CharLS, OpenJPEG, OpenJPH, libjpeg-turbo, built with
Emscripten's embind) build their bindings with ``new Function`` inside the decode worker.
A script the page loads with ``<script>`` ignores the policy of its own response."""


def app_config(*, case_id: uuid.UUID) -> dict[str, Any]:
    """OHIF's ``window.config`` for viewing one case's studies."""
    root = dicomweb_root(case_id)
    return {
        "name": "second-opinion-portal",
        "routerBasename": shell_base(case_id),
        "extensions": [],
        "modes": [],
        # No guided tour: it is a first-visit pop-up over the image a specialist came to read.
        "customizationService": {"ohif.tours": {"$set": []}},
        # The case page is the study list; OHIF opens one study of one case.
        "showStudyList": False,
        "investigationalUseDialog": {"option": "never"},
        "showLoadingIndicator": True,
        "showCPUFallbackMessage": True,
        "showErrorDetails": "production",
        "strictZSpacingForVolumeViewport": True,
        "maxNumberOfWebWorkers": 3,
        "maxNumRequests": {"interaction": 100, "thumbnail": 5, "prefetch": 10},
        "defaultDataSourceName": DATA_SOURCE,
        "dataSources": [
            {
                "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
                "sourceName": DATA_SOURCE,
                "configuration": _dicomweb(root),
            }
        ],
    }


def _dicomweb(root: str) -> dict[str, Any]:
    """The case's DICOMweb service as OHIF's ``dicomweb`` data source sees it."""
    return {
        "friendlyName": "Studies of this case",
        "name": "portal",
        "qidoRoot": root,
        "wadoRoot": root,
        "wadoUriRoot": root,
        # A real PS3.18 server: it filters QIDO itself (not a static file tree) and answers
        # multipart/related, the standard's default, for frames and bulk data.
        "staticWado": False,
        "qidoSupportsIncludeField": True,
        "supportsFuzzyMatching": False,
        "supportsWildcard": True,
        "imageRendering": "wadors",
        # Thumbnails are drawn from frames in the browser: no rendered endpoint is needed.
        "thumbnailRendering": "wadors",
        "enableStudyLazyLoad": True,
        "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
        "omitQuotationForMultipartRequest": True,
        # The viewer only reads: nothing is rejected or stored from it.
        "supportsReject": False,
        "dicomUploadEnabled": False,
    }


def config_script(*, case_id: uuid.UUID, version: str) -> str:
    """``app-config.js`` for one case: the public path, the dynamic-import shim and the config."""
    base = static_base(version)
    config = json.dumps(app_config(case_id=case_id), indent=2, sort_keys=True)
    return "\n".join(
        [
            "// Written by the portal for one case; see docs/ohif.md.",
            f"window.PUBLIC_URL = {json.dumps(base)};",
            # OHIF imports a few optional modules by a root path (the slide microscopy viewer);
            # they are files of the release, under its public path.
            "window.browserImportFunction = function (path) {",
            f"  return import(path.charAt(0) === '/' ? {json.dumps(base)} + path.slice(1) : path);",
            "};",
            f"window.config = {config};",
            "",
        ]
    )
