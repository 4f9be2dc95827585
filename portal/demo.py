"""Demo accounts for ``portal init --demo``: one per role, credentials shown once."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session

from portal.accounts import service as accounts_service
from portal.accounts import totp, two_step
from portal.accounts.models import Role, UserCreate
from portal.audit.service import SYSTEM
from portal.sealing import SecretBox
from portal.settings import Settings
from reviewers import specialists
from reviewers.models import SpecialistProfileUpdate
from reviewers.treatment import seed as treatment_seed

DEMO_PROFILE = {
    "specialties": ["neuroradiology", "musculoskeletal_radiology", "spine_surgery"],
    "body_regions": ["head", "neck", "spine", "upper_limb", "lower_limb", "pelvis"],
    "modalities": ["MR", "CT", "CR", "DX"],
    "languages": ["en", "ru", "de"],
    "credentials": "Demo specialist (not a real licence)",
    "public_listing": True,
}
"""The demo specialist reads most musculoskeletal and neuro cases, so demo cases find them."""

DEMO_ACCOUNTS = [
    (Role.patient, "patient@demo.example.com", "Demo Patient", "en"),
    (Role.specialist, "specialist@demo.example.com", "Dr Demo Specialist", "en"),
    (Role.coordinator, "coordinator@demo.example.com", "Demo Coordinator", "en"),
    (Role.admin, "admin@demo.example.com", "Demo Admin", "en"),
]


@dataclass(frozen=True)
class DemoCredential:
    role: Role
    email: str
    password: str
    totp_secret: str | None


def ensure_demo_accounts(
    *, session: Session, settings: Settings, box: SecretBox
) -> list[DemoCredential]:
    """Create the demo accounts that do not exist yet; return credentials of the new ones only."""
    created: list[DemoCredential] = []
    for role, email, name, language in DEMO_ACCOUNTS:
        if accounts_service.get_user_by_email(session=session, email=email) is not None:
            continue
        password = "demo-" + secrets.token_urlsafe(12)
        user, secret = two_step.create_enrolled_account(
            session=session,
            settings=settings,
            box=box,
            ctx=SYSTEM,
            data=UserCreate(email=email, password=password, full_name=name, language=language),
            role=role,
            details={"demo": True},
        )
        if role == Role.specialist:
            specialists.apply_profile(
                specialists.profile_for(session=session, user=user),
                SpecialistProfileUpdate.model_validate(DEMO_PROFILE),
            )
        created.append(DemoCredential(role, email, password, secret))
    session.commit()
    return created


def describe(credentials: list[DemoCredential], *, issuer: str) -> str:
    lines = ["Demo accounts (shown once; also saved to the demo credentials file):"]
    for cred in credentials:
        lines.append(f"  {cred.role.value:<12} {cred.email:<32} password: {cred.password}")
        if cred.totp_secret:
            uri = totp.provisioning_uri(cred.totp_secret, email=cred.email, issuer=issuer)
            lines.append(f"  {'':<12} TOTP secret: {cred.totp_secret}  ({uri})")
    return "\n".join(lines)


def save(text: str, path: Path) -> None:
    """Keep the demo credentials in a file only its owner can read (development only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        handle.write(text + "\n")


def ensure_treatment_guide(*, session: Session) -> str:
    """The treatment guide's seed (spinal hemangioma, three clinics), where it is missing."""
    return str(treatment_seed.load_seed(session=session, ctx=SYSTEM))
