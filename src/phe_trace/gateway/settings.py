"""Settings of the federation gateway (SPEC §17.2); defaults are the EFGS limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import GatewayConfigError

__all__ = ["GatewaySettings"]


@dataclass(frozen=True)
class GatewaySettings:
    """Where the gateway keeps its data and the limits it enforces.

    ``trust_anchor`` is the operator's PEM public key that countersigns the allow-list.
    ``callback_allow_private`` admits callback URLs over plain HTTP and to loopback or
    private addresses (a deployment on one private network, and tests); off by default.
    """

    database_url: str
    trust_anchor: Path
    max_upload_keys: int = 5000
    download_batch_keys: int = 5000
    download_days: int = 2
    retention_days: int = 3
    batching_interval_seconds: float = 300.0
    callback_allow_private: bool = False
    callback_max_failures: int = 5
    callback_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
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

    def read_trust_anchor(self) -> bytes:
        """The trust anchor's PEM bytes."""
        try:
            return self.trust_anchor.read_bytes()
        except OSError as exc:
            raise GatewayConfigError(f"cannot read the trust anchor: {exc.strerror}") from None
