"""Settings of the diagnosis-key server: one object, every variable documented.

Each field is read from the environment as ``PHE_TRACE_<FIELD NAME IN CAPITALS>`` (e.g.
``PHE_TRACE_DATABASE_URL``) or passed to :func:`load_settings`. All problems are reported
at start-up at once, as one :class:`~phe_trace.server.errors.ServerConfigError`. Placeholder
secrets are refused. ``server/README.md`` has the same table for operators.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from phe_trace.settings import PheTraceSettings, is_placeholder

from .errors import ServerConfigError

__all__ = ["ServerSettings", "load_settings"]

_REGION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,31}$")


class ServerSettings(PheTraceSettings):
    """Every setting of the key server (env prefix ``PHE_TRACE_``)."""

    model_config = SettingsConfigDict(env_prefix="PHE_TRACE_", extra="ignore", frozen=True)

    data_dir: Path = Field(
        Path("phe-trace-data"),
        description="Directory for the SQLite file, signing keys, revision-token keys and exports.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; PostgreSQL as "
        "postgresql+psycopg://… Default: SQLite file in data_dir.",
    )
    export_dir: Path | None = Field(
        None, description="Export store directory (default data_dir/exports)."
    )
    export_s3_bucket: str | None = Field(
        None,
        description="S3 bucket of the export store; set, it replaces the directory store.",
    )
    export_s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint URL (an S3-compatible server); default: AWS."
    )
    export_s3_region: str | None = Field(
        None, description="S3 signing region; default: the AWS chain (AWS_REGION …)."
    )
    export_s3_prefix: str = Field(
        "v1/exports", description="Key prefix of export objects in the bucket."
    )
    export_s3_addressing: Literal["auto", "path", "virtual"] = Field(
        "auto", description="S3 addressing: path-style, virtual-host, or the client's choice."
    )
    region: str = Field("ZZ", description="Region written into exports and used in URLs.")
    allowed_health_authority_ids: list[str] = Field(
        default_factory=list,
        description=(
            "Accepted healthAuthorityID values of publish requests (app ids); empty = any."
        ),
    )
    max_keys_on_publish: int = Field(30, ge=1, le=100, description="Keys per publish.")
    max_same_start_interval_keys: int = Field(
        3, ge=1, le=30, description=("Keys allowed to share one rolling start interval.")
    )
    max_interval_age_on_publish_hours: int = Field(
        360,
        ge=24,
        le=24 * 30,
        description=("Oldest key accepted, by end of validity (default 15 days)."),
    )
    max_symptom_onset_days: int = Field(
        14,
        ge=0,
        le=28,
        description=("Largest |days since onset| kept on a key; beyond it the onset is dropped."),
    )
    max_symptom_onset_report_days: int = Field(
        28, ge=1, le=60, description=("A symptomOnsetInterval older than this is ignored.")
    )
    default_symptom_onset_days_ago: int = Field(
        4,
        ge=0,
        le=14,
        description=("Onset assumed when neither the request nor the certificate gives one."),
    )
    truncate_window_seconds: int = Field(
        3600,
        ge=60,
        le=86400,
        description=("created_at of stored keys is truncated to this window."),
    )
    release_same_day_keys: bool = Field(
        False, description=("Debug only: export still-valid keys before they expire (no embargo).")
    )
    max_body_bytes: int = Field(
        65536,
        ge=4096,
        le=4 * 1024 * 1024,
        description=("Largest accepted request body; larger bodies get 413."),
    )
    response_padding_min_bytes: int = Field(
        1024,
        ge=0,
        le=65536,
        description=("Publish responses are padded to at least this many bytes of padding ..."),
    )
    response_padding_range_bytes: int = Field(
        1024, ge=0, le=65536, description=("... plus a random 0..range more.")
    )
    certificate_clock_skew_seconds: int = Field(
        60, ge=0, le=3600, description=("Clock skew tolerated on exp/nbf/iat of certificates.")
    )
    revision_token_keys: list[str] = Field(
        default_factory=list,
        description=(
            "Revision-token AES keys as 'kid:base64(32 bytes)', newest first; default: a key "
            "file created in data_dir."
        ),
    )
    revision_token_aad: str = Field(
        "phe-trace revision token v1",
        min_length=1,
        description=("Additional authenticated data bound into revision tokens."),
    )
    signing_key_id: str = Field(
        "000",
        min_length=1,
        max_length=64,
        description=("verification_key_id in exports (GAEN: usually the MCC)."),
    )
    export_period_seconds: int = Field(
        3600,
        ge=600,
        le=86400,
        description=("Length of one export batch window; must divide 86400."),
    )
    export_min_window_age_seconds: int = Field(
        7200,
        ge=0,
        le=86400,
        description=("A batch is written only when its window ended at least this long ago."),
    )
    export_min_records: int = Field(
        1000,
        ge=0,
        le=100_000,
        description=("Exports with fewer keys are padded with random keys to this many ..."),
    )
    export_padding_range: int = Field(
        100, ge=0, le=10_000, description=("... plus a random 0..range more.")
    )
    export_max_records: int = Field(
        500_000,
        ge=100,
        le=750_000,
        description=("Largest number of keys in one export file; larger batches are split."),
    )
    export_lease_seconds: int = Field(
        300,
        ge=10,
        le=3600,
        description=("How long a worker holds a batch before another may take it over."),
    )
    export_interval_seconds: int = Field(
        300,
        ge=0,
        le=86400,
        description=("Period of the in-process export loop of `server run`; 0 disables it."),
    )
    retention_days: int = Field(
        14,
        ge=1,
        le=60,
        description=("Keys, certificate markers and export files older than this are deleted."),
    )
    analytics_fetch_token: SecretStr | None = Field(
        None,
        description=(
            "Bearer token the aggregators must present to read the analytics feed "
            "(GET /v1/analytics/shares); unset, the feed is open (its boxes are sealed to "
            "the aggregators)."
        ),
    )
    analytics_uploads_per_second: float = Field(
        50.0,
        ge=0,
        le=100_000,
        description=(
            "Analytics uploads accepted per second from all devices together, with a burst "
            "of one minute's worth; more get 429. 0 = no limit."
        ),
    )
    jwks_cache_seconds: int = Field(
        300, ge=0, le=86400, description=("How long a health authority's fetched JWKS is cached.")
    )
    chaff_max_delay_ms: int = Field(
        1000,
        ge=0,
        le=5000,
        description=("Upper bound of the delay added to chaff answers to match real latency."),
    )
    log_level: str = Field("INFO", description="Log level of the JSON logs.")

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(
                "region must be 1-32 characters of A-Z a-z 0-9 _ -, not starting with -"
            )
        return value

    @field_validator("export_s3_bucket", "export_s3_endpoint_url", "export_s3_region")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("export_s3_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        value = value.strip("/")
        if any(part in {"", ".", ".."} for part in value.split("/")) and value:
            raise ValueError("export_s3_prefix must be path segments without empty, . or ..")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("database_url must be a sqlite:// or postgresql:// URL")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value[len("postgresql://") :]
        return value

    @field_validator("revision_token_keys")
    @classmethod
    def _check_revision_keys(cls, value: list[str]) -> list[str]:
        for item in value:
            kid, sep, material = item.partition(":")
            if not sep or not kid:
                raise ValueError("each revision token key must be 'kid:base64key'")
            if is_placeholder(material):
                raise ValueError(f"revision token key {kid!r} is a placeholder secret")
            try:
                raw = base64.b64decode(material, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(f"revision token key {kid!r} is not base64") from None
            if len(raw) != 32:
                raise ValueError(f"revision token key {kid!r} must be 32 bytes")
        return value

    @field_validator("revision_token_aad")
    @classmethod
    def _check_aad(cls, value: str) -> str:
        if is_placeholder(value):
            raise ValueError("revision_token_aad is a placeholder value")
        return value

    @field_validator("export_period_seconds")
    @classmethod
    def _check_period(cls, value: int) -> int:
        if 86400 % value:
            raise ValueError("export_period_seconds must divide 86400")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("log_level must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @model_validator(mode="after")
    def _check_cross(self) -> ServerSettings:
        if self.export_period_seconds % self.truncate_window_seconds:
            raise ValueError("export_period_seconds must be a multiple of truncate_window_seconds")
        return self

    # Derived locations ---------------------------------------------------------------

    @property
    def effective_database_url(self) -> str:
        """The database URL in use: the setting, or SQLite in ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'keyserver.sqlite3').resolve()}"

    @property
    def effective_export_dir(self) -> Path:
        """Directory of the export store."""
        return self.export_dir or self.data_dir / "exports"

    @property
    def signing_key_dir(self) -> Path:
        """Directory holding the export signing keys (PEM, mode 0600)."""
        return self.data_dir / "signing-keys"


def load_settings(**overrides: Any) -> ServerSettings:
    """Settings from the environment plus ``overrides``; every problem reported at once."""
    try:
        return ServerSettings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "settings"
            env = f"PHE_TRACE_{where.upper()}" if err["loc"] else "settings"
            problems.append(f"{env}: {err['msg']}")
        raise ServerConfigError("invalid settings: " + "; ".join(problems)) from None
