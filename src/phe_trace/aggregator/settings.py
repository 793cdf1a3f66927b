"""Settings of one aggregator process (env ``PHE_TRACE_AGGREGATOR_*``), checked at start-up.

=========================  ==========================================================
variable                   meaning
=========================  ==========================================================
``ROLE``                   ``leader`` or ``helper``
``DATABASE_URL``           own database (default: ``PHE_TRACE_DATABASE_URL``)
``PRIVATE_KEY``            hex X25519 private key (32 bytes) opening this role's boxes
``VERIFY_KEY``             hex 32-byte Prio3 verification key shared by both aggregators
``PEER_TOKEN``             bearer token between leader and helper (≥ 16 characters)
``HELPER_URL``             leader only: base URL of the helper
``INGEST_URL``             base URL of the key server serving ``/v1/analytics``
``INGEST_TOKEN``           bearer token for fetching boxes (if the key server wants one)
``EPSILON``                ε of each (day, metric) noise draw (default 1.0)
``DAILY_BUDGET``           ε budget per day across metrics (default 4.0)
``MIN_BATCH_SIZE``         minimum accepted reports before anything is released (100)
``HOST`` / ``PORT``        where ``phe-trace aggregator run`` listens
``COLLECT_INTERVAL``       leader: seconds between automatic collections (0 = off)
=========================  ==========================================================
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from phe_trace.analytics.dp import DEFAULT_DAILY_BUDGET, DEFAULT_EPSILON, DEFAULT_MIN_BATCH_SIZE
from phe_trace.settings import PheTraceSettings, common_settings, is_placeholder

from .errors import AggregatorConfigError

__all__ = ["AggregatorSettings"]

#: An aggregator's database when neither its own URL nor ``PHE_TRACE_DATABASE_URL`` is set.
DEFAULT_DATABASE_URL = "sqlite:///phe-trace-aggregator.sqlite3"


class AggregatorSettings(PheTraceSettings):
    """One aggregator's configuration."""

    model_config = SettingsConfigDict(env_prefix="PHE_TRACE_AGGREGATOR_", extra="ignore")

    #: ``leader`` (collects, releases totals) or ``helper`` (answers the leader only).
    role: Literal["leader", "helper"] = "leader"
    #: SQLAlchemy URL of this aggregator's own database (its shares and releases);
    #: default ``PHE_TRACE_DATABASE_URL``, else ``sqlite:///phe-trace-aggregator.sqlite3``.
    #: A leader and a helper never share one database.
    database_url: str = Field(
        default_factory=lambda: common_settings().database_url or DEFAULT_DATABASE_URL
    )
    #: X25519 private key, 64 hex characters: devices seal this aggregator's shares to its
    #: public key (`phe-trace aggregator keygen`).
    private_key: SecretStr = SecretStr("")
    #: Prio3 verification key shared by leader and helper, 64 hex characters.
    verify_key: SecretStr = SecretStr("")
    #: Bearer token leader and helper present to each other (at least 16 characters).
    peer_token: SecretStr = SecretStr("")
    #: Base URL of the helper (the leader only).
    helper_url: str | None = None
    #: Base URL of the key server whose analytics feed holds the sealed shares.
    ingest_url: str = "http://127.0.0.1:8080"
    #: Bearer token for the key server's feed, when it requires one
    #: (`PHE_TRACE_ANALYTICS_FETCH_TOKEN` there).
    ingest_token: SecretStr | None = None
    #: ε of each metric's daily release (discrete Laplace noise).
    epsilon: float = DEFAULT_EPSILON
    #: Total ε a day's releases may spend over all metrics.
    daily_budget: float = DEFAULT_DAILY_BUDGET
    #: Fewest reports a total is released for; below it the day says "not released".
    min_batch_size: int = DEFAULT_MIN_BATCH_SIZE
    #: Address `aggregator run` listens on.
    host: str = "127.0.0.1"
    #: Port `aggregator run` listens on.
    port: int = 8090
    #: Seconds between the leader's own collections of yesterday (0: only on request).
    collect_interval: float = 0.0

    def check(self) -> None:
        """Raise AggregatorConfigError naming every problem at once."""
        problems = []
        for name in ("private_key", "verify_key"):
            value = getattr(self, name).get_secret_value()
            try:
                ok = len(bytes.fromhex(value)) == 32
            except ValueError:
                ok = False
            if not ok:
                problems.append(f"{name} must be 64 hex characters (32 bytes)")
        token = self.peer_token.get_secret_value()
        if len(token) < 16 or is_placeholder(token):
            problems.append("peer_token must be a real secret of at least 16 characters")
        if self.role == "leader" and not self.helper_url:
            problems.append("helper_url is required for the leader")
        if not self.epsilon > 0 or self.epsilon > self.daily_budget:
            problems.append("epsilon must be positive and within daily_budget")
        if self.min_batch_size < 1:
            problems.append("min_batch_size must be at least 1")
        if problems:
            raise AggregatorConfigError("invalid aggregator settings: " + "; ".join(problems))

    @property
    def agg_id(self) -> int:
        """Prio3 aggregator index: 0 for the leader, 1 for the helper."""
        return 0 if self.role == "leader" else 1

    def private_key_bytes(self) -> bytes:
        return bytes.fromhex(self.private_key.get_secret_value())

    def verify_key_bytes(self) -> bytes:
        return bytes.fromhex(self.verify_key.get_secret_value())
