"""Errors of the aggregator role.

::

    PheTraceError
    └── AggregatorError              any failure of an aggregator process
        ├── AggregatorConfigError    settings missing, malformed or placeholder (all listed)
        ├── PeerError                the other aggregator or the key server failed or refused
        ├── ProtocolViolation        a request breaks the aggregation protocol (unknown or
        │                            repeated reports, second aggregate-share request, …)
        └── BatchTooSmall            fewer accepted reports than the minimum batch size
"""

from __future__ import annotations

from phe_trace.errors import PheTraceError

__all__ = [
    "AggregatorConfigError",
    "AggregatorError",
    "BatchTooSmall",
    "PeerError",
    "ProtocolViolation",
]


class AggregatorError(PheTraceError):
    """Root of the aggregator branch."""

    code = "aggregator_error"
    status = 500


class AggregatorConfigError(AggregatorError):
    """Raised at start-up when settings are missing or invalid; the message lists all."""

    code = "aggregator_config"


class PeerError(AggregatorError):
    """Raised when the peer aggregator or the ingestion endpoint fails or answers badly."""

    code = "peer_error"
    status = 502


class ProtocolViolation(AggregatorError):
    """Raised when a peer request breaks the protocol (e.g. asks twice for a share)."""

    code = "protocol_violation"
    status = 409


class BatchTooSmall(AggregatorError):
    """Raised when a (day, metric) has fewer accepted reports than the minimum batch."""

    code = "batch_too_small"
    status = 409
