"""Why the viewer could not be installed. Whatever was installed before stays as it was."""

from __future__ import annotations


class OhifInstallError(Exception):
    """The pinned OHIF release could not be installed."""

    default_message = "the OHIF viewer could not be installed"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)


class DownloadFailed(OhifInstallError):
    default_message = "the OHIF release could not be downloaded"


class IntegrityMismatch(OhifInstallError):
    default_message = "the downloaded OHIF release does not match its pinned integrity hash"


class UnsafeArchive(OhifInstallError):
    """The tarball holds an entry that must not be unpacked; nothing of it is kept."""

    def __init__(self, entry: str, reason: str) -> None:
        super().__init__(f"refusing the archive: {entry!r} {reason}")
        self.entry = entry
        self.reason = reason


class UnexpectedBundle(OhifInstallError):
    """The release does not look like the OHIF build this installer knows how to serve."""
