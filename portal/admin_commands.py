"""Operator commands behind the CLI: accounts and audit verification."""

from __future__ import annotations

from pydantic import ValidationError

from portal.accounts import totp, two_step
from portal.accounts.models import Role, UserCreate
from portal.audit import sealer
from portal.audit import service as audit_service
from portal.audit.service import AuditContext
from portal.db import create_db_engine, session_scope
from portal.errors import PortalError
from portal.sealing import SecretBox
from portal.settings import Settings

CLI = AuditContext(actor_role="operator")


def add_user(
    settings: Settings,
    *,
    role: str,
    email: str,
    full_name: str,
    language: str,
    password: str,
    profile: dict[str, object] | None = None,
) -> int:
    """Create an account; staff are enrolled in TOTP and their otpauth URI is printed once.

    A specialist's profile (what they read, languages, capacity) may be given at once.
    """
    from reviewers import specialists
    from reviewers.models import SpecialistProfileUpdate

    engine = create_db_engine(settings.database_url)
    box = SecretBox(settings.secret_key.get_secret_value())
    try:
        data = UserCreate(email=email, password=password, full_name=full_name, language=language)
        update = SpecialistProfileUpdate.model_validate(profile) if profile else None
        with session_scope(engine) as session:
            user, secret = two_step.create_enrolled_account(
                session=session, settings=settings, box=box, ctx=CLI, data=data, role=Role(role)
            )
            if user.role == Role.specialist:
                specialists.apply_profile(
                    specialists.profile_for(session=session, user=user),
                    update or SpecialistProfileUpdate(),
                )
    except ValidationError as exc:
        print(f"portal: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
        return 2
    except PortalError as exc:
        print(f"portal: {exc.message}")
        return 2
    finally:
        engine.dispose()
    print(f"created {role} {user.email} ({user.id})")
    if secret:
        print("two-factor authentication is required; add this to an authenticator app:")
        print(f"  {totp.provisioning_uri(secret, email=user.email, issuer=settings.totp_issuer)}")
    return 0


def verify_audit(settings: Settings, *, seal: bool = True) -> int:
    """Seal what has settled (unless ``seal`` is off), then walk the chain."""
    engine = create_db_engine(settings.database_url)
    try:
        if seal:
            sealed = sealer.seal(engine=engine)
            if sealed.skipped:
                print("another process is sealing the audit trail; checking what is sealed")
        with session_scope(engine) as session:
            report = audit_service.verify_chain(session=session)
    finally:
        engine.dispose()
    if report.unsealed:
        age = report.oldest_unsealed_age
        print(
            f"{report.unsealed} row(s) not sealed yet, the oldest "
            f"{age.total_seconds() if age else 0:.0f} s old"
        )
    if report.ok:
        print(
            f"audit trail intact: {report.checked} rows, head {report.head_seq} {report.head_hash}"
        )
        return 0
    print(f"audit trail BROKEN at row {report.first_bad_seq}: {report.problem}")
    print(f"({report.checked} rows verified before it)")
    return 1


def seed_treatment_guide(settings: Settings, *, overwrite: bool = False) -> int:
    """Load the treatment guide's seed file (adds what is missing; ``overwrite`` resets)."""
    from reviewers.treatment import seed

    engine = create_db_engine(settings.database_url)
    try:
        with session_scope(engine) as session:
            report = seed.load_seed(session=session, ctx=CLI, overwrite=overwrite)
    except PortalError as exc:
        print(f"portal: {exc.message}")
        return 2
    finally:
        engine.dispose()
    print(report)
    return 0
