"""Verification codes and tokens: issuance, single-use exchange, statistics (storage side).

``protocol_spec/SPEC.md`` §13 (VER-1 … VER-5). Codes and tokens exist in clear only in
the response that hands them out; the database keeps keyed hashes. A claim is one
conditional ``UPDATE … WHERE claimed_at IS NULL``, so a code or token can be used once
even under concurrent requests, on SQLite and PostgreSQL alike.

Every write is one transaction, retried once on a dropped connection
(:func:`~.database.retry_once`, VER-15). A retry recognises its own first attempt when
that attempt's commit went through unheard: a verify by the token it drew before the
first attempt (its hash is stored in that transaction), a certificate by a random
``used_by`` reference, an issuance by the code's uuid. So a retry neither claims twice
nor loses a claim the device never heard of.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from .database import retry_once
from .errors import (
    CodeExpiredError,
    CodeInvalidError,
    CodeSpaceExhaustedError,
    InvalidDateError,
    InvalidTestTypeError,
    MissingDateError,
    QuotaExceededError,
    TokenExpiredError,
    TokenInvalidError,
    UnsupportedTestTypeError,
)
from .keyring import Keyring
from .models import (
    PORTAL_TEST_TYPES,
    TEST_TYPES,
    CodeStatus,
    CodeSummary,
    DayStats,
    IssuedCode,
    VerifiedCode,
)
from .settings import VerificationSettings
from .storage import codes as queries

__all__ = ["LONG_CODE_ALPHABET", "CodeStore", "accepted_test_types", "normalize_code"]

#: Characters of long codes (lower-case letters and digits).
LONG_CODE_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
_ISSUE_ATTEMPTS = 10
# GAEN v1 hierarchy: accepting "likely" implies "confirmed"; "negative" implies both.
_ACCEPT_IMPLIES = {
    "confirmed": {"confirmed"},
    "likely": {"confirmed", "likely"},
    "negative": {"confirmed", "likely", "negative"},
    "user-report": {"user-report"},
}


def accepted_test_types(accept: list[str] | None) -> set[str]:
    """The test types a device accepts, from its ``accept`` list (VER-4).

    Empty or absent means every type. An unknown name raises ``invalid_test_type``.
    """
    if not accept:
        return set(TEST_TYPES)
    out: set[str] = set()
    for name in accept:
        implied = _ACCEPT_IMPLIES.get(name)
        if implied is None:
            raise InvalidTestTypeError(f"unknown test type {name!r} in accept")
        out |= implied
    return out


def normalize_code(code: str) -> str:
    """The form a code is hashed in: trimmed, lower-case."""
    return code.strip().lower()


def _utc_day(unix: int) -> date:
    return date(1970, 1, 1) + timedelta(days=unix // 86400)


#: Claim and use times are kept to the hour only (VER-16): together with the key
#: server's tables they must not pair the k-th claim with the k-th upload.
TIME_QUANTUM_S = 3600
_ROW_IDS = secrets.SystemRandom()


def _insert_token(conn: Connection, **values: Any) -> None:
    """Insert a token row under a random id (ids in the order of claims would pair the
    k-th claim with the k-th upload); a colliding id is drawn again."""
    for attempt in range(8):
        try:
            with conn.begin_nested():
                queries.insert_token(conn, id=_ROW_IDS.randrange(1, 2**31), **values)
            return
        except IntegrityError:
            if attempt == 7:
                raise


def coarse(unix: int) -> int:
    """``unix`` rounded down to the hour."""
    return unix - unix % TIME_QUANTUM_S


def coarse_expiry(unix: int, lifetime_s: int) -> int:
    """An expiry at most one quantum before ``unix + lifetime_s`` and never sooner than
    half the lifetime: the hour for lifetimes of two hours or more, else ten minutes."""
    quantum = TIME_QUANTUM_S if lifetime_s >= 2 * TIME_QUANTUM_S else 600
    if lifetime_s < 2 * quantum:
        quantum = 60
    end = unix + lifetime_s
    return end - end % quantum


class CodeStore:
    """Issue, list and claim codes; exchange tokens; count per realm and UTC day."""

    def __init__(self, engine: Engine, keyring: Keyring, settings: VerificationSettings) -> None:
        self._engine = engine
        self._keyring = keyring
        self._settings = settings

    # --- issuance -------------------------------------------------------------------

    def check_dates(self, now: datetime, test_date: date | None, symptom_date: date | None) -> None:
        """Refuse future dates, dates older than the limit, and (if required) no date."""
        if self._settings.require_date and test_date is None and symptom_date is None:
            raise MissingDateError("a test date or a symptom date is required")
        today = now.date()
        oldest = today - timedelta(days=self._settings.max_date_age_days)
        for name, value in (("test date", test_date), ("symptom date", symptom_date)):
            if value is not None and not oldest <= value <= today:
                raise InvalidDateError(f"{name} {value.isoformat()} is outside {oldest}..{today}")

    def _new_codes(self) -> tuple[str, str]:
        short = str(secrets.randbelow(10**self._settings.short_code_length)).zfill(
            self._settings.short_code_length
        )
        long = "".join(
            secrets.choice(LONG_CODE_ALPHABET) for _ in range(self._settings.long_code_length)
        )
        return short, long

    def issue(
        self,
        realm_id: int,
        now: datetime,
        test_type: str,
        test_date: date | None,
        symptom_date: date | None,
        record: Callable[[Connection, str], None] | None = None,
    ) -> IssuedCode:
        """Issue a short and a long code for one test result, within the realm's quota.

        ``record(conn, uuid)`` runs in the issuing transaction (the audit log entry), so
        the code and its record are stored together or not at all.
        """
        if test_type not in PORTAL_TEST_TYPES:
            raise InvalidTestTypeError(f"test type must be one of {', '.join(PORTAL_TEST_TYPES)}")
        self.check_dates(now, test_date, symptom_date)
        unix = int(now.timestamp())
        expires_at = unix + self._settings.short_code_minutes * 60
        long_expires_at = unix + self._settings.long_code_hours * 3600
        for _ in range(_ISSUE_ATTEMPTS):
            short, long = self._new_codes()
            code_uuid = str(uuid.uuid4())
            row: dict[str, Any] = {
                "uuid": code_uuid,
                "realm_id": realm_id,
                "test_type": test_type,
                "symptom_date": symptom_date,
                "test_date": test_date,
                "code_hash": self._keyring.hash_code(short),
                "long_code_hash": self._keyring.hash_code(long),
                "issued_at": unix,
                "expires_at": expires_at,
                "long_expires_at": long_expires_at,
                "claimed_at": None,
            }

            def attempt(retry: bool, row: dict[str, Any] = row) -> None:
                with self._engine.begin() as conn:
                    if retry and queries.code_stored(conn, row["uuid"]):
                        return  # the first attempt's commit went through
                    if not queries.count_issued(conn, realm_id, _utc_day(unix)):
                        raise QuotaExceededError("the realm's daily quota of codes is used up")
                    queries.insert_code(conn, row)
                    if record is not None:
                        record(conn, row["uuid"])

            try:
                retry_once(attempt)
            except IntegrityError:
                continue  # a code collided with a stored one: draw again
            return IssuedCode(code_uuid, short, long, test_type, expires_at, long_expires_at)
        raise CodeSpaceExhaustedError("could not draw an unused code")

    def list_recent(self, realm_id: int, now: datetime, limit: int = 50) -> list[CodeSummary]:
        """The realm's newest codes with their status; never the code itself."""
        unix = int(now.timestamp())
        with self._engine.connect() as conn:
            rows = queries.recent_codes(conn, realm_id, limit)
        out = []
        for r in rows:
            if r.claimed_at is not None:
                status = CodeStatus.CLAIMED
            elif max(r.expires_at, r.long_expires_at) <= unix:
                status = CodeStatus.EXPIRED
            else:
                status = CodeStatus.UNCLAIMED
            out.append(
                CodeSummary(
                    r.uuid, r.test_type, r.issued_at, r.expires_at, r.long_expires_at, status
                )
            )
        return out

    # --- device API -----------------------------------------------------------------

    def verify(self, realm_id: int, code: str, accept: set[str], now: datetime) -> VerifiedCode:
        """Claim a code once and hand out a single-use token (VER-2, VER-4, VER-15)."""
        unix = int(now.timestamp())
        code_hash = self._keyring.hash_code(normalize_code(code))
        token = secrets.token_urlsafe(32)  # drawn once: the retry's mark of its own claim
        token_hash = self._keyring.hash_token(token)

        def attempt(retry: bool) -> Any:
            with self._engine.begin() as conn:
                row = queries.code_by_hash(conn, realm_id, code_hash)
                if retry and row is not None and row.claimed_at is not None:
                    if queries.token_stored(conn, token_hash):
                        return row  # the first attempt's commit went through
                if row is None or row.claimed_at is not None:
                    raise CodeInvalidError("verification code invalid")
                expiry = row.expires_at if row.code_hash == code_hash else row.long_expires_at
                if expiry <= unix:
                    raise CodeExpiredError("verification code expired")
                if row.test_type not in accept:
                    raise UnsupportedTestTypeError("verification code has unsupported test type")
                if not queries.claim_code(conn, row.id, coarse(unix)):
                    raise CodeInvalidError("verification code invalid")
                _insert_token(
                    conn,
                    token_hash=token_hash,
                    realm_id=realm_id,
                    test_type=row.test_type,
                    symptom_date=row.symptom_date,
                    test_date=row.test_date,
                    issued_at=coarse(unix),
                    expires_at=coarse_expiry(unix, self._settings.token_minutes * 60),
                    used_at=None,
                )
                queries.count(conn, realm_id, _utc_day(unix), "codes_claimed")
                return row

        try:
            row = retry_once(attempt)
        except (CodeInvalidError, CodeExpiredError, UnsupportedTestTypeError):
            # Counted in a transaction of its own: the refused attempt's was rolled back.
            self.count_invalid(realm_id, now)
            raise
        return VerifiedCode(token, row.test_type, row.symptom_date, row.test_date)

    def claim_token(self, realm_id: int, token: str, now: datetime) -> Any:
        """Use a token once; returns its row (test type and dates) (VER-5, VER-15)."""
        unix = int(now.timestamp())
        if not token or len(token) > 512:
            raise TokenInvalidError("verification token invalid")
        token_hash = self._keyring.hash_token(token)
        reference = secrets.token_hex(16)  # marks this request's claim (see the retry)

        def attempt(retry: bool) -> Any:
            with self._engine.begin() as conn:
                row = queries.token_by_hash(conn, realm_id, token_hash)
                if retry and row is not None and row.used_by == reference:
                    return row  # the first attempt's commit went through
                if row is None or row.used_at is not None:
                    raise TokenInvalidError("verification token invalid")
                if row.expires_at <= unix:
                    raise TokenExpiredError("verification token expired")
                if not queries.use_token(conn, row.id, coarse(unix), reference):
                    raise TokenInvalidError("verification token invalid")
                queries.count(conn, realm_id, _utc_day(unix), "tokens_claimed")
                return row

        return retry_once(attempt)

    # --- statistics -----------------------------------------------------------------

    def count_invalid(self, realm_id: int, now: datetime) -> None:
        """Count one refused verification attempt (VER-14), in a transaction of its own.

        A code unknown, already claimed or expired, or of a test type the app does not
        accept. Retried once like every write; a retry after a commit that went through
        unheard counts the attempt twice, which only a statistic can show.
        """
        unix = int(now.timestamp())

        def attempt(_retry: bool) -> None:
            with self._engine.begin() as conn:
                queries.count(conn, realm_id, _utc_day(unix), "codes_invalid")

        retry_once(attempt)

    def stats(self, realm_id: int, now: datetime, days: int = 30) -> list[DayStats]:
        """Counts of the last ``days`` UTC days, oldest first, zero-filled."""
        today = now.date()
        first = today - timedelta(days=days - 1)
        with self._engine.connect() as conn:
            rows = queries.stats_since(conn, realm_id, first)
        by_day = {r.day: r for r in rows}
        out = []
        for i in range(days):
            day = first + timedelta(days=i)
            r = by_day.get(day)
            out.append(
                DayStats(day, 0, 0, 0, 0)
                if r is None
                else DayStats(
                    day, r.codes_issued, r.codes_claimed, r.codes_invalid, r.tokens_claimed
                )
            )
        return out

    def totals(self) -> dict[str, dict[str, int]]:
        """Per realm name, each daily count summed over every day (VER-14, ``/metrics``)."""
        columns = queries.STAT_COLUMNS
        with self._engine.connect() as conn:
            rows = queries.totals(conn)
        return {r.name: {c: int(getattr(r, c) or 0) for c in columns} for r in rows}

    def issued_today(self, realm_id: int, now: datetime) -> int:
        """Codes the realm issued so far this UTC day."""
        with self._engine.connect() as conn:
            return queries.issued_on(conn, realm_id, now.date())

    # --- retention ------------------------------------------------------------------

    def purge(self, now: datetime) -> tuple[int, int]:
        """Delete code status past retention and expired tokens; returns the counts."""
        unix = int(now.timestamp())
        keep_after = unix - self._settings.code_retention_days * 86400
        with self._engine.begin() as conn:
            return queries.purge(conn, keep_after, unix)
