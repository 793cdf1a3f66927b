"""The aggregator role: a leader or helper of Prio3 aggregate statistics (SPEC §15).

Built on ``phe_trace.analytics``; meets the key server and the other aggregator only on
the wire (HTTP). Never imports ``server`` or ``agent``.
"""

from .app import create_app
from .errors import (
    AggregatorConfigError,
    AggregatorError,
    BatchTooSmall,
    PeerError,
    ProtocolViolation,
)
from .service import Aggregator, Release, Withheld
from .settings import AggregatorSettings

__all__ = [
    "Aggregator",
    "AggregatorConfigError",
    "AggregatorError",
    "AggregatorSettings",
    "BatchTooSmall",
    "PeerError",
    "ProtocolViolation",
    "Release",
    "Withheld",
    "create_app",
]
