"""Time-based one-time passwords (RFC 6238) with replay protection."""

from __future__ import annotations

import time

import pyotp
import segno

from portal.accounts.models import User
from portal.sealing import SecretBox

_PURPOSE = "totp-secret"
_STEP = 30


def new_secret() -> str:
    return pyotp.random_base32()


def seal_secret(box: SecretBox, secret: str) -> str:
    return box.seal(_PURPOSE, secret.encode())


def open_secret(box: SecretBox, user: User) -> str | None:
    if user.totp_secret_sealed is None:
        return None
    return box.open(_PURPOSE, user.totp_secret_sealed).decode()


def provisioning_uri(secret: str, *, email: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The otpauth URI as an inline SVG QR code for authenticator apps."""
    return str(segno.make(uri, error="m").svg_inline(scale=4))


def accepted_step(
    secret: str, code: str, *, last_step: int | None, now: float | None = None
) -> int | None:
    """The time step ``code`` matches (±1 step of clock drift), or None.

    A step at or before ``last_step`` is refused, so an observed code cannot be replayed.
    """
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    moment = time.time() if now is None else now
    current = int(moment // _STEP)
    totp = pyotp.TOTP(secret)
    for step in (current, current - 1, current + 1):
        if last_step is not None and step <= last_step:
            continue
        if totp.verify(code, for_time=step * _STEP, valid_window=0):
            return step
    return None
