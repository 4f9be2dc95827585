"""Scrubbing: read back every stored object and compare the bucket with the database.

The portal supplies what its rows say should exist; the scrub reports objects that are
missing, that fail to decrypt or verify (corrupt), and objects nobody expects (orphaned).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from storage.errors import IntegrityError, KeyUnavailable, ObjectNotFound
from storage.vault import OBJECT_PREFIX, Vault

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExpectedObject:
    """One database row's view of a stored object."""

    object_key: str
    case_id: str
    wrapped_key: bytes
    sha256: str


@dataclass(frozen=True)
class CorruptObject:
    """An object that exists but cannot be read back intact, and why."""

    object_key: str
    reason: str


@dataclass
class ScrubReport:
    """What a scrub found; ``clean`` when nothing is missing, corrupt or orphaned."""

    verified: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    corrupt: list[CorruptObject] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when every expected object verified and nothing else is stored."""
        return not (self.missing or self.corrupt or self.orphaned)

    def summary(self) -> str:
        """One line for the CLI and the logs."""
        return (
            f"{len(self.verified)} verified, {len(self.missing)} missing, "
            f"{len(self.corrupt)} corrupt, {len(self.orphaned)} orphaned"
        )


def scrub(
    vault: Vault, expected: Iterable[ExpectedObject], *, prefix: str = OBJECT_PREFIX
) -> ScrubReport:
    """Verify every expected object and find stored objects without a row.

    Parameters
    ----------
    vault
        The vault whose bucket is scrubbed.
    expected
        One entry per database row that references a stored object.
    prefix
        Only stored objects under this prefix are considered (all vault objects by default).

    Returns
    -------
    ScrubReport
        Verified, missing, corrupt and orphaned object keys.
    """
    stored = {info.key for info in vault.list_objects(prefix)}
    report = ScrubReport()
    seen: set[str] = set()
    for item in expected:
        seen.add(item.object_key)
        if item.object_key not in stored:
            report.missing.append(item.object_key)
            continue
        try:
            problem = _read_back(vault, item)
        except ObjectNotFound:
            report.missing.append(item.object_key)  # deleted while we were scrubbing
            continue
        if problem is None:
            report.verified.append(item.object_key)
        else:
            report.corrupt.append(CorruptObject(item.object_key, problem))
    report.orphaned = sorted(stored - seen)
    log.info("storage scrub finished: %s", report.summary())
    return report


def _read_back(vault: Vault, item: ExpectedObject) -> str | None:
    """Read the whole object, verifying every segment and the SHA-256; the problem or None.

    S3 being unreachable is not a property of the object: that error propagates.
    """
    try:
        for _ in vault.open(
            case_id=item.case_id,
            wrapped_key=item.wrapped_key,
            object_key=item.object_key,
            sha256=item.sha256,
        ):
            pass
    except (IntegrityError, KeyUnavailable, ValueError) as exc:
        return str(exc)
    return None
