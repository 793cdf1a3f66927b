"""Settings of the verification service: environment variables ``PHE_TRACE_VERIFICATION_*``.

One object, every variable documented, all errors reported at start-up at once
(pydantic validates the whole object). ``protocol_spec/SPEC.md`` §13 gives the protocol
numbers these defaults implement.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from phe_trace.settings import PheTraceSettings, common_settings, is_placeholder

__all__ = ["ENV_PREFIX", "VerificationSettings"]

#: Prefix of every environment variable of the verification service.
ENV_PREFIX = "PHE_TRACE_VERIFICATION_"


class VerificationSettings(PheTraceSettings):
    """Configuration of the verification service and the case-worker portal."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    #: Directory for the default SQLite file and secret file (the key server's default too).
    data_dir: Path = Path("phe-trace-data")
    #: SQLAlchemy URL of the database (SQLite file or PostgreSQL); default
    #: ``PHE_TRACE_DATABASE_URL``, else ``sqlite:///<data_dir>/verification.sqlite3``. It
    #: may be the key server's database: the service's tables are prefixed ``vf_`` and its
    #: Alembic version table is ``alembic_version_verification``.
    database_url: str | None = Field(default_factory=lambda: common_settings().database_url)
    #: Server secret (≥ 32 characters) keying the hashes of codes, tokens and API keys, the
    #: CSRF tokens and the sealing of the signing keys. When unset, the secret file is read
    #: (and created with 32 random bytes, mode 0600, on first start).
    secret: SecretStr | None = None
    #: File holding the server secret when ``secret`` is unset; default
    #: ``<data_dir>/verification-secret``.
    secret_file: Path | None = None
    #: Public base URL of this service (e.g. ``https://verify.example.org``). When set, the
    #: combined server registers ``<public_url>/.well-known/jwks.json`` with the key server
    #: so rotated keys are fetched; without it the current keys are registered in-process.
    public_url: str | None = None
    #: ``iss`` of every certificate; the key server looks the health authority up by it.
    issuer: str = Field(default="phe-trace-verification", min_length=1)
    #: ``aud`` of every certificate; must equal the audience the key server is configured with.
    audience: str = Field(default="phe-trace-keyserver", min_length=1)
    #: Digits of a short verification code (typed by the person).
    short_code_length: int = Field(default=8, ge=6, le=12)
    #: Lifetime of a short code in minutes.
    short_code_minutes: int = Field(default=60, ge=1, le=24 * 60)
    #: Characters of a long verification code (sent as a link).
    long_code_length: int = Field(default=16, ge=12, le=32)
    #: Lifetime of a long code in hours.
    long_code_hours: int = Field(default=24, ge=1, le=72)
    #: Lifetime of a verification token (``/api/verify`` → ``/api/certificate``) in minutes.
    token_minutes: int = Field(default=24 * 60, ge=1, le=7 * 24 * 60)
    #: Lifetime of a certificate in minutes (``exp`` − now).
    certificate_minutes: int = Field(default=15, ge=1, le=24 * 60)
    #: Seconds ``iat`` and ``nbf`` are set into the past, for key servers with slow clocks.
    allowed_clock_skew_seconds: int = Field(default=60, ge=0, le=3600)
    #: Oldest test or symptom date accepted at issuance, in days before today (UTC).
    max_date_age_days: int = Field(default=28, ge=1, le=365)
    #: Refuse to issue a code without a test date or a symptom date (``missing_date``).
    require_date: bool = False
    #: Daily quota of codes of a new realm (UTC day); realm admins' setting overrides it.
    default_daily_quota: int = Field(default=100, ge=0)
    #: Requests to ``/api/verify`` allowed per API key per window.
    verify_rate_limit: int = Field(default=60, ge=1)
    #: Length of the rate-limit window in seconds.
    verify_rate_window_seconds: int = Field(default=60, ge=1)
    #: Maintenance mode: the device API and code issuance answer ``maintenance_mode``.
    #: (``phe-trace server admin maintenance on`` sets it at run time as well.)
    maintenance_mode: bool = False
    #: Failed sign-ins in a row after which an account is locked.
    signin_max_failures: int = Field(default=5, ge=1)
    #: How long a locked account stays locked, in minutes.
    signin_lockout_minutes: int = Field(default=15, ge=1)
    #: Lifetime of a portal session in hours.
    session_hours: int = Field(default=8, ge=1, le=72)
    #: Mark the session cookie ``Secure`` (leave on in production; HTTPS via the proxy).
    cookie_secure: bool = True
    #: Argon2id cost (pynacl's limits): interactive (64 MiB), moderate (256 MiB), sensitive.
    password_strength: Literal["interactive", "moderate", "sensitive"] = "interactive"  # noqa: S105
    #: Days a code's status (never the code) is kept for the portal's list and statistics.
    code_retention_days: int = Field(default=14, ge=1)
    #: Add 1–2 KiB of random ``padding`` to device-API responses (hides outcomes by size).
    response_padding: bool = True
    #: Largest request body of the device API and the portal in bytes; a larger one is
    #: refused with 413 before it is read (a declared length) or once it passes the limit.
    max_body_bytes: int = Field(default=16384, ge=1024, le=1024 * 1024)
    #: Base URL of the leader aggregator whose ``/v1/aggregates`` the portal's community
    #: statistics page shows (e.g. ``https://leader.example.org``); unset: no Prio3 totals.
    statistics_leader_url: str | None = None
    #: Base URL of the key server whose ``/v1/statistics/key-counts`` the page shows; unset:
    #: the key server of this process when hosted with it (role ``all``), else none.
    statistics_keyserver_url: str | None = None

    @field_validator("secret")
    @classmethod
    def _refuse_weak_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        raw = value.get_secret_value()
        if len(raw) < 32:
            raise ValueError("secret must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        if is_placeholder(raw) or len(set(raw)) < 8:
            raise ValueError("secret looks like a placeholder; generate a random one")
        return value

    @property
    def effective_database_url(self) -> str:
        """``database_url`` (its own, else ``PHE_TRACE_DATABASE_URL``), or the SQLite file
        in ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'verification.sqlite3'}"

    @property
    def effective_secret_file(self) -> Path:
        """``secret_file``, or ``<data_dir>/verification-secret``."""
        return self.secret_file or self.data_dir / "verification-secret"

    @property
    def jwks_url(self) -> str | None:
        """Public URL of the JWKS, when ``public_url`` is set."""
        if not self.public_url:
            return None
        return self.public_url.rstrip("/") + "/.well-known/jwks.json"

    def with_default_data_dir(
        self, data_dir: Path, database_url: str | None = None
    ) -> VerificationSettings:
        """These settings, with ``data_dir`` (and ``database_url``, when the caller has one)
        taken from the caller unless set explicitly: one ``PHE_TRACE_DATA_DIR`` and one
        ``PHE_TRACE_DATABASE_URL`` move every role of a process."""
        update: dict[str, object] = {}
        if "data_dir" not in self.model_fields_set:
            update["data_dir"] = data_dir
        if database_url and not self.database_url:
            update["database_url"] = database_url
        return self.model_copy(update=update) if update else self

    @field_validator("public_url", "statistics_leader_url", "statistics_keyserver_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is not None and value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value or None
