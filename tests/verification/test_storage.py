"""Storage: own migrations and version table, shared database, secrets only as hashes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from phe_trace.verification import ManualClock, VerificationService
from phe_trace.verification.database import make_engine
from phe_trace.verification.tables import VERSION_TABLE, metadata

from .conftest import START, WORKER_PASSWORD, make_settings


def _all_text(engine: sa.Engine) -> str:
    """Every value of every vf_ table, as one string (bytes decoded leniently)."""
    parts: list[str] = []
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        for table in inspector.get_table_names():
            if not table.startswith("vf_"):
                continue
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        parts.append(bytes(value).hex())
                        parts.append(bytes(value).decode("latin-1"))
                    else:
                        parts.append(str(value))
    return "\n".join(parts)


def test_migrations_build_the_declared_schema_beside_another_alembic(
    tmp_path: Path, database_url: str
) -> None:
    """The service shares a database: own vf_ tables and own Alembic version table (SPEC VER-10)."""
    engine = make_engine(database_url)
    with engine.begin() as conn:  # another component's Alembic state, which must survive
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('keyserver0001')"))
        conn.execute(sa.text("CREATE TABLE other_table (id INTEGER PRIMARY KEY)"))
    service = VerificationService(make_settings(tmp_path, database_url), engine=engine)
    VerificationService(make_settings(tmp_path, database_url), engine=engine)  # idempotent
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == (
            "keyserver0001"
        )
        assert conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar() == (
            "vf0002"
        )
        context = MigrationContext.configure(
            conn,
            opts={
                "include_name": lambda name, type_, _: type_ != "table" or name.startswith("vf_")
            },
        )
        assert compare_metadata(context, metadata) == []
    service.close()


def test_codes_tokens_keys_and_passwords_are_not_stored_in_clear(
    tmp_path: Path, database_url: str
) -> None:
    """Codes, tokens, API keys, passwords and signing keys appear nowhere in the database.

    (SPEC VER-3, VER-9)
    """
    clock = ManualClock(START)
    service = VerificationService(make_settings(tmp_path, database_url), clock=clock)
    realm = service.accounts.create_realm("r")
    password = "a-long-enough-password"
    user = service.accounts.create_user(realm.id, "u", password, is_admin=True, actor="t")
    _, api_key = service.accounts.create_api_key(realm.id, "app", "t")
    issued = service.issue_code(user, "confirmed", START.date(), None)
    other = service.issue_code(user, "likely", None, START.date() - timedelta(days=2))
    token = service.verify(api_key, issued.code, None).token
    _, private = service.signing.active()
    private_numbers = format(private.private_numbers().private_value, "x")
    dump = _all_text(service.engine)
    for secret in (issued.code, issued.long_code, other.code, other.long_code, token, api_key):
        assert secret not in dump
    assert password not in dump and "$argon2id$" in dump
    assert private_numbers not in dump
    service.close()


def test_purge_removes_old_code_status_and_expired_tokens(tmp_path: Path, sqlite_url: str) -> None:
    """Code status is kept for the retention period only (SPEC VER-10)."""
    clock = ManualClock(START)
    service = VerificationService(make_settings(tmp_path, sqlite_url), clock=clock)
    realm = service.accounts.create_realm("r")
    user = service.accounts.create_user(realm.id, "u", "p" * 12 + "x1", is_admin=False, actor="t")
    _, api_key = service.accounts.create_api_key(realm.id, "app", "t")
    issued = service.issue_code(user, "confirmed", None, None)
    service.verify(api_key, issued.code, None)
    clock.advance(timedelta(days=2))
    assert service.codes.purge(clock.now()) == (0, 1)
    clock.advance(timedelta(days=service.settings.code_retention_days))
    assert service.codes.purge(clock.now()) == (1, 0)
    assert service.codes.list_recent(realm.id, clock.now()) == []
    service.close()


def test_signing_key_survives_restart_and_rotation_keeps_old_key_published(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The sealed signing key is reloaded; after rotation both keys are in the JWKS until retired.

    (SPEC VER-8)
    """
    settings = make_settings(tmp_path, sqlite_url)
    first = VerificationService(settings)
    kid, key = first.signing.active()
    first.close()
    second = VerificationService(settings)
    kid2, key2 = second.signing.active()
    assert kid2 == kid and key2.private_numbers() == key.private_numbers()
    new_kid = second.signing.rotate(second.clock.now())
    assert [k["kid"] for k in second.signing.jwks()["keys"]] == [kid, new_kid]
    assert second.signing.retire_inactive(second.clock.now()) == [kid]
    assert [k["kid"] for k in second.signing.jwks()["keys"]] == [new_kid]
    second.close()


def test_jwks_entries_are_p256_signature_keys_of_the_active_key(
    tmp_path: Path, sqlite_url: str
) -> None:
    """VER-8: each JWK Set entry has exactly kty EC, crv P-256, x, y, kid, use sig and alg
    ES256, and its x and y are the active signing key's public point."""
    import base64

    service = VerificationService(make_settings(tmp_path, sqlite_url))
    kid, key = service.signing.active()
    [entry] = service.signing.jwks()["keys"]
    service.close()
    assert set(entry) == {"kty", "crv", "x", "y", "kid", "use", "alg"}
    assert (entry["kty"], entry["crv"], entry["use"], entry["alg"]) == (
        "EC",
        "P-256",
        "sig",
        "ES256",
    )
    assert entry["kid"] == kid
    numbers = key.public_key().public_numbers()
    for name, value in (("x", numbers.x), ("y", numbers.y)):
        raw = base64.urlsafe_b64decode(entry[name] + "=" * (-len(entry[name]) % 4))
        assert int.from_bytes(raw, "big") == value


def test_issuance_accepts_dates_from_today_back_to_the_age_limit_only(
    tmp_path: Path, sqlite_url: str
) -> None:
    """VER-1: a test or symptom date from today back to 28 days ago is accepted; tomorrow and
    29 days ago answer ``invalid_date``; when a date is required, none answers ``missing_date``."""
    import pytest

    from phe_trace.verification.errors import InvalidDateError, MissingDateError

    settings = make_settings(tmp_path, sqlite_url, require_date=True)
    service = VerificationService(settings, clock=ManualClock(START))
    realm = service.accounts.create_realm("dates")
    worker = service.accounts.create_user(
        realm.id, "worker", WORKER_PASSWORD, is_admin=False, actor="test"
    )
    today = START.date()
    for day in (today, today - timedelta(days=28)):
        assert service.issue_code(worker, "confirmed", day, None).test_type == "confirmed"
        assert service.issue_code(worker, "likely", None, day).test_type == "likely"
    for day in (today + timedelta(days=1), today - timedelta(days=29)):
        for test_date, symptom_date in ((day, None), (None, day), (today, day), (day, today)):
            with pytest.raises(InvalidDateError) as info:
                service.issue_code(worker, "confirmed", test_date, symptom_date)
            assert info.value.code == "invalid_date"
    with pytest.raises(MissingDateError) as missing:
        service.issue_code(worker, "confirmed", None, None)
    assert missing.value.code == "missing_date"
    assert service.codes.issued_today(realm.id, START) == 4
    service.close()


def test_issuance_that_draws_only_stored_codes_fails_inside_the_error_tree(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When every draw collides with a stored code, issuance raises the service's own
    ``code_space_exhausted`` error, and the refused attempts count nothing against the
    realm's quota."""
    from phe_trace.verification.codes import CodeStore
    from phe_trace.verification.errors import CodeSpaceExhaustedError, VerificationError

    service = VerificationService(make_settings(tmp_path, sqlite_url), clock=ManualClock(START))
    realm = service.accounts.create_realm("tiny")
    worker = service.accounts.create_user(
        realm.id, "worker", WORKER_PASSWORD, is_admin=False, actor="test"
    )
    monkeypatch.setattr(CodeStore, "_new_codes", lambda self: ("12345678", "a" * 16))
    service.issue_code(worker, "confirmed", None, None)
    with pytest.raises(CodeSpaceExhaustedError) as info:
        service.issue_code(worker, "confirmed", None, None)
    assert isinstance(info.value, VerificationError)
    assert (info.value.code, info.value.status) == ("code_space_exhausted", 500)
    assert service.codes.issued_today(realm.id, START) == 1
    service.close()


def test_wrong_secret_cannot_open_the_signing_key(tmp_path: Path, sqlite_url: str) -> None:
    """The signing key is sealed with a key derived from the server secret (SPEC VER-9)."""
    import pytest

    from phe_trace.verification.errors import ConfigurationError

    VerificationService(make_settings(tmp_path, sqlite_url)).close()
    other = make_settings(tmp_path, sqlite_url, secret="z9y8x7w6v5u4t3s2r1q0p9o8n7m6l5k4j3i2h1g0")
    with pytest.raises(ConfigurationError):
        VerificationService(other)


def test_concurrent_first_starts_agree_on_schema_secret_and_signing_key(
    tmp_path: Path, database_url: str
) -> None:
    """Workers starting at once share one secret and one active signing key.

    (SPEC VER-8, VER-9)
    """
    import concurrent.futures

    settings = make_settings(tmp_path, database_url, secret=None)

    def start(_: int) -> tuple[bytes, dict[str, object]]:
        service = VerificationService(settings)
        try:
            return service.keyring.code_key, service.signing.jwks()
        finally:
            service.close()

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(start, range(4)))
    assert len({key for key, _ in results}) == 1
    assert all(jwks == results[0][1] for _, jwks in results)
    assert len(results[0][1]["keys"]) == 1  # type: ignore[arg-type]
    assert (tmp_path / "data" / "verification-secret").stat().st_size == 32
