"""What an installed OHIF release is: its folder and the manifest the installer writes last."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from portal.settings import Settings

MANIFEST = "portal-ohif.json"
"""Written by the installer into a release's folder; a folder without it is not installed."""


@dataclass(frozen=True)
class Bundle:
    """An installed release: where its files are and what the page must load to start it."""

    version: str
    integrity: str
    directory: Path
    scripts: tuple[str, ...]
    """Entry scripts, relative to the release folder, in the order the page loads them."""
    stylesheets: tuple[str, ...]

    def manifest(self) -> str:
        fields = asdict(self)
        fields.pop("directory")
        return json.dumps(fields, indent=2, sort_keys=True) + "\n"


def read_bundle(directory: Path) -> Bundle | None:
    """The release installed in ``directory``, or ``None`` when nothing complete is there."""
    try:
        fields = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        return Bundle(
            version=str(fields["version"]),
            integrity=str(fields["integrity"]),
            directory=directory,
            scripts=tuple(str(name) for name in fields["scripts"]),
            stylesheets=tuple(str(name) for name in fields["stylesheets"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def installed(*, root: Path, version: str, integrity: str) -> Bundle | None:
    """The release ``version`` under ``root`` if it was installed from the pinned tarball."""
    bundle = read_bundle(root / version)
    if bundle is None or bundle.version != version or bundle.integrity != integrity:
        return None
    return bundle


def installed_for(settings: Settings) -> Bundle | None:
    """The pinned release, when it is installed; ``None`` means the viewer is unavailable."""
    return installed(
        root=settings.ohif_root, version=settings.ohif_version, integrity=settings.ohif_integrity
    )
