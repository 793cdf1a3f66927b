"""Small parts checked against independent answers: accept hierarchy, date intervals, settings."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from phe_trace.verification import ManualClock, VerificationSettings
from phe_trace.verification.codes import accepted_test_types
from phe_trace.verification.errors import InvalidTestTypeError, RateLimitedError
from phe_trace.verification.keyring import Keyring, load_secret
from phe_trace.verification.passwords import hash_password, verify_password
from phe_trace.verification.ratelimit import RateLimiter
from phe_trace.verification.signing import date_interval


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (["confirmed"], {"confirmed"}),
        (["likely"], {"confirmed", "likely"}),
        (["confirmed", "likely"], {"confirmed", "likely"}),
        (["negative"], {"confirmed", "likely", "negative"}),
        (["user-report"], {"user-report"}),
        ([], {"confirmed", "likely", "negative", "user-report"}),
        (None, {"confirmed", "likely", "negative", "user-report"}),
    ],
)
def test_accept_hierarchy(accept: list[str] | None, expected: set[str]) -> None:
    """GAEN v1: likely implies confirmed, negative implies both; empty accepts all (SPEC VER-4)."""
    assert accepted_test_types(accept) == expected


def test_unknown_accept_type_is_invalid() -> None:
    """An unknown name in accept raises invalid_test_type (SPEC VER-4)."""
    with pytest.raises(InvalidTestTypeError):
        accepted_test_types(["confirmed", "positive"])


@pytest.mark.parametrize("day", [date(2020, 4, 2), date(2021, 12, 31), date(2024, 2, 29)])
def test_date_interval_is_enin_of_utc_midnight(day: date) -> None:
    """symptomOnsetInterval = floor(unix(UTC midnight) / 600) (SPEC VER-7)."""
    assert date_interval(day) == calendar.timegm(day.timetuple()) // 600
    if day == date(2020, 4, 2):
        assert date_interval(day) == 2642976  # GAEN's test vector key start


@pytest.mark.parametrize("secret", ["short", "changeme" * 5, "a" * 40])
def test_settings_refuse_weak_or_placeholder_secrets(secret: str) -> None:
    """Settings refuse short, placeholder and low-entropy secrets (SPEC VER-9)."""
    with pytest.raises(ValidationError):
        VerificationSettings(secret=secret)


def test_secret_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    """Without a configured secret a random one is created in data_dir and reused (SPEC VER-9)."""
    settings = VerificationSettings(data_dir=tmp_path / "d")
    first = load_secret(settings)
    assert len(first) == 32
    path = tmp_path / "d" / "verification-secret"
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_secret(settings) == first


def test_derived_keys_differ_per_purpose() -> None:
    """One secret, independent keys per purpose (SPEC VER-9)."""
    ring = Keyring.from_secret(b"s" * 32)
    values = {
        ring.hash_code("x"),
        ring.hash_token("x"),
        ring.hash_api_key("x"),
        ring.csrf_token("x"),
    }
    assert len(values) == 4
    assert Keyring.from_secret(b"t" * 32).hash_code("x") != ring.hash_code("x")


def test_argon2id_hashes_verify_and_reject() -> None:
    """Passwords are Argon2id hashes (SPEC VER-12)."""
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batterY")
    assert not verify_password("garbage", "x")


def test_rate_limiter_counts_per_key_and_window() -> None:
    """Fixed window per API key (SPEC VER-11)."""
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    limiter = RateLimiter(2, 60)
    limiter.hit(1, clock.now())
    limiter.hit(1, clock.now())
    limiter.hit(2, clock.now())
    with pytest.raises(RateLimitedError) as info:
        limiter.hit(1, clock.now())
    assert info.value.retry_after == 60
    clock.advance(timedelta(seconds=60))
    limiter.hit(1, clock.now())


def test_public_surface_is_pinned() -> None:
    """What hosting, the CLI and the simulator import from the package (SPEC VER-8)."""
    import phe_trace.verification as verification

    assert set(verification.__all__) == {
        "JWKS_PATH",
        "Clock",
        "ManualClock",
        "SystemClock",
        "VerificationError",
        "VerificationService",
        "VerificationSettings",
        "create_app",
    }
    assert all(hasattr(verification, name) for name in verification.__all__)
    assert verification.JWKS_PATH == "/.well-known/jwks.json"
