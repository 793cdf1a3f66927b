"""Portal passwords: Argon2id (libsodium via pynacl), stored in the standard ``$argon2id$`` form."""

from __future__ import annotations

from typing import Literal

from nacl import pwhash
from nacl.exceptions import InvalidkeyError

__all__ = ["MIN_PASSWORD_LENGTH", "check_password_policy", "hash_password", "verify_password"]

#: Shortest password accepted for a portal account.
MIN_PASSWORD_LENGTH = 12

_LIMITS = {
    "interactive": (pwhash.argon2id.OPSLIMIT_INTERACTIVE, pwhash.argon2id.MEMLIMIT_INTERACTIVE),
    "moderate": (pwhash.argon2id.OPSLIMIT_MODERATE, pwhash.argon2id.MEMLIMIT_MODERATE),
    "sensitive": (pwhash.argon2id.OPSLIMIT_SENSITIVE, pwhash.argon2id.MEMLIMIT_SENSITIVE),
}
Strength = Literal["interactive", "moderate", "sensitive"]


def check_password_policy(password: str) -> str | None:
    """``None`` if ``password`` is acceptable, else the reason it is not."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"password must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > 1024:
        return "password must be at most 1024 characters"
    return None


def hash_password(password: str, strength: Strength = "interactive") -> str:
    """Argon2id hash of ``password`` with a random salt, as an ASCII string."""
    ops, mem = _LIMITS[strength]
    return pwhash.argon2id.str(password.encode("utf-8"), opslimit=ops, memlimit=mem).decode("ascii")


def verify_password(stored: str, password: str) -> bool:
    """True if ``password`` matches the stored Argon2id hash."""
    try:
        return bool(pwhash.argon2id.verify(stored.encode("ascii"), password.encode("utf-8")))
    except (InvalidkeyError, ValueError, UnicodeEncodeError):
        return False
