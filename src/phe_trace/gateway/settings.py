"""Settings of the federation gateway (env ``PHE_TRACE_GATEWAY_*``, SPEC §17.2); defaults
are the EFGS limits."""

from __future__ import annotations

from pathlib import Path

from pydantic import model_validator
from pydantic_settings import SettingsConfigDict

from phe_trace.settings import PheTraceSettings

from .errors import GatewayConfigError

__all__ = ["GatewaySettings"]


class GatewaySettings(PheTraceSettings):
    """Where the gateway keeps its data and the limits it enforces.

    A value of the wrong type is refused by its environment variable; limits that do not
    fit together raise :class:`GatewayConfigError` naming every problem at once.
    """

    model_config = SettingsConfigDict(env_prefix="PHE_TRACE_GATEWAY_", extra="ignore", frozen=True)

    #: SQLite or PostgreSQL URL of the gateway's own database (also `--database-url`);
    #: unset, the `phe-trace gateway` commands use `PHE_TRACE_DATABASE_URL`.
    database_url: str
    #: The operator's PEM public key that countersigns the allow-list (also
    #: `--trust-anchor`).
    trust_anchor: Path
    #: Keys one upload may carry at most; more are 413 `batch_too_large`.
    max_upload_keys: int = 5000
    #: Keys one download batch holds at most (at least `MAX_UPLOAD_KEYS`).
    download_batch_keys: int = 5000
    #: UTC days back from today members may download (1 … `RETENTION_DAYS`); an older
    #: day is 410 `gone`.
    download_days: int = 2
    #: Days after which stored keys are deleted (batch rows and the audit stay).
    retention_days: int = 3
    #: Seconds between the scheduled runs that form download batches, call back and apply
    #: retention (0: no scheduled runs).
    batching_interval_seconds: float = 300.0
    #: Admit callback URLs over plain HTTP and to loopback or private addresses (a
    #: deployment on one private network, and tests); off by default.
    callback_allow_private: bool = False
    #: Failed deliveries in a row after which a callback subscription is deleted.
    callback_max_failures: int = 5
    #: Seconds one callback delivery may take.
    callback_timeout_seconds: float = 10.0

    @model_validator(mode="after")
    def _check_limits(self) -> GatewaySettings:
        problems = []
        if self.max_upload_keys < 1:
            problems.append("max_upload_keys must be at least 1")
        if self.download_batch_keys < self.max_upload_keys:
            problems.append("download_batch_keys must be at least max_upload_keys")
        if not 1 <= self.download_days <= self.retention_days:
            problems.append("download_days must be between 1 and retention_days")
        if self.batching_interval_seconds < 0:
            problems.append("batching_interval_seconds must not be negative")
        if problems:
            raise GatewayConfigError("; ".join(problems))
        return self

    def read_trust_anchor(self) -> bytes:
        """The trust anchor's PEM bytes."""
        try:
            return self.trust_anchor.read_bytes()
        except OSError as exc:
            raise GatewayConfigError(f"cannot read the trust anchor: {exc.strerror}") from None
