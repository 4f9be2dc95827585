"""Load the treatment guide from ``seed.yaml`` (``portal treatment seed`` and the demo setup).

Idempotent: entries are matched by slug. By default only missing entries are added, so a
coordinator's later edits (a new price, a corrected text) survive every restart of the demo;
``overwrite`` brings existing entries back to the file. One audit event per load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError
from sqlmodel import Session

from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.errors import InvalidInput, describe_validation_errors
from reviewers.treatment import editor, guide
from reviewers.treatment.editor import Applied
from reviewers.treatment.models import GuideSeed

SEED_FILE = Path(__file__).with_name("seed.yaml")


@dataclass
class SeedReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def count(self, applied: Applied) -> None:
        if applied.created:
            self.created += 1
        elif applied.changed:
            self.updated += 1
        else:
            self.unchanged += 1

    def __str__(self) -> str:
        return (
            f"treatment guide: {self.created} added, {self.updated} updated, "
            f"{self.unchanged} unchanged"
        )


def read_seed(path: Path = SEED_FILE) -> GuideSeed:
    """The file's content, validated like the coordinators' forms.

    Raises
    ------
    InvalidInput
        The file is not YAML, or an entry breaks a rule (named in the message).
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return GuideSeed.model_validate(raw or {})
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path.name} is not valid YAML: {exc}") from None
    except ValidationError as exc:
        raise InvalidInput(f"{path.name}: {describe_validation_errors(exc.errors())}") from None


def load_seed(
    *, session: Session, ctx: AuditContext, path: Path = SEED_FILE, overwrite: bool = False
) -> SeedReport:
    """Add the file's conditions, options, clinics and offers (all or nothing)."""
    seed = read_seed(path)
    report = SeedReport()
    try:
        for condition in seed.conditions:
            report.count(editor.apply_condition(session, condition, overwrite=overwrite))
        for option in seed.options:
            report.count(editor.apply_option(session, option, overwrite=overwrite))
        for clinic in seed.clinics:
            report.count(editor.apply_clinic(session, clinic, overwrite=overwrite))
        session.flush()
        for slug, offers in seed.offers.items():
            found = guide.clinic_by_slug(session, slug)
            if found is None:
                raise InvalidInput(f"{path.name}: offers name an unknown clinic {slug!r}")
            for offer in offers:
                report.count(editor.apply_offer(session, found, offer, overwrite=overwrite))
        audit_service.record(
            session=session,
            ctx=ctx,
            action="treatment.guide.seed",
            entity_type="treatment_guide",
            details={
                "file": path.name,
                "created": report.created,
                "updated": report.updated,
                "overwrite": overwrite,
            },
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return report
