"""Domain values of the verification service (apart from storage rows and wire schemas)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

__all__ = [
    "PORTAL_TEST_TYPES",
    "TEST_TYPES",
    "ApiKey",
    "AuditEvent",
    "CodeStatus",
    "CodeSummary",
    "DayStats",
    "IssuedCode",
    "Realm",
    "User",
    "VerifiedCode",
]

#: Test types a code can carry; each is also the certificate's ``reportType`` (GAEN v1).
TEST_TYPES: tuple[str, ...] = ("confirmed", "likely", "negative", "user-report")
#: Test types a case worker can issue from the portal.
PORTAL_TEST_TYPES: tuple[str, ...] = ("confirmed", "likely", "negative")


class CodeStatus(StrEnum):
    """Status of an issued code as the portal lists it."""

    UNCLAIMED = "unclaimed"
    CLAIMED = "claimed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Realm:
    """A tenant: one health authority's team with its own users, API keys and quota."""

    id: int
    name: str
    daily_quota: int


@dataclass(frozen=True, slots=True)
class User:
    """A portal account (case worker, or realm admin when ``is_admin``)."""

    id: int
    realm_id: int
    username: str
    is_admin: bool
    disabled: bool
    locked_until: int | None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An app's API key as listed (never the key itself)."""

    id: int
    realm_id: int
    name: str
    key_prefix: str
    created_at: int
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class IssuedCode:
    """A freshly issued code: the only moment the codes exist in clear."""

    uuid: str
    code: str
    long_code: str
    test_type: str
    expires_at: int
    long_expires_at: int


@dataclass(frozen=True, slots=True)
class CodeSummary:
    """An issued code as the portal lists it: no code, no personal data."""

    uuid: str
    test_type: str
    issued_at: int
    expires_at: int
    long_expires_at: int
    status: CodeStatus


@dataclass(frozen=True, slots=True)
class VerifiedCode:
    """Answer of ``/api/verify``: the token and what the code certified."""

    token: str
    test_type: str
    symptom_date: date | None
    test_date: date | None


@dataclass(frozen=True, slots=True)
class DayStats:
    """A realm's counts for one UTC day."""

    day: date
    codes_issued: int
    codes_claimed: int
    codes_invalid: int
    tokens_claimed: int


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One line of the audit log: who did what, when (no codes, no personal data)."""

    actor: str
    action: str
    detail: str
    created_at: int
