"""Staff accounts for the benchmarks: made directly in the database, enrolled in TOTP, with a
specialist profile where given (the portal's own services, as ``portal users add`` does)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from portal.accounts import service as accounts_service
from portal.accounts import totp, two_step
from portal.accounts.models import Role, UserCreate
from portal.sealing import SecretBox
from portal.settings import Settings
from reviewers import specialists
from reviewers.models import SpecialistProfileUpdate


def enrolled_staff(
    *,
    engine: Engine,
    settings: Settings,
    role: Role,
    email: str,
    password: str,
    full_name: str,
    profile: dict[str, Any] | None = None,
) -> tuple[uuid.UUID, str]:
    """The new account's id and its TOTP secret."""
    secret = totp.new_secret()
    with Session(engine, expire_on_commit=False) as session:
        user = accounts_service.create_user(
            session=session,
            settings=settings,
            role=role,
            data=UserCreate(email=email, password=password, full_name=full_name),
        )
        box = SecretBox(settings.secret_key.get_secret_value())
        two_step.enable_totp_with_secret(session=session, box=box, user=user, secret=secret)
        if profile is not None:
            specialists.apply_profile(
                specialists.profile_for(session=session, user=user),
                SpecialistProfileUpdate.model_validate(profile),
            )
        session.commit()
        return user.id, secret
