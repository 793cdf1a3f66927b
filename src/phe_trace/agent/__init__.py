"""The device agent: broadcast, listen, remember for 14 days, match, notify.

``protocol_spec/SPEC.md`` §14. :class:`Agent` is the whole agent behind a synchronous
step API driven by an injected clock (see :mod:`phe_trace.agent.agent`); radios are in
:mod:`phe_trace.agent.radio` (``bluez``, ``bumble``, ``sim``).
"""

from .agent import Agent, TickResult
from .config import AgentConfig, load_config
from .errors import (
    AgentError,
    BluezUnavailableError,
    BluezVersionError,
    ConfigError,
    ExportRejectedError,
    NoAdapterError,
    RadioError,
    RadioPermissionError,
    RadioStateError,
    ReportError,
    ServerUnavailableError,
    StoreCorruptError,
    StoreError,
    StoreKeyError,
    SyncError,
)
from .radio.base import Radio, RadioSighting
from .records import SightingRecord, StoredKey
from .report import ReportResult
from .store import AgentStore
from .sync import SyncResult

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentError",
    "AgentStore",
    "BluezUnavailableError",
    "BluezVersionError",
    "ConfigError",
    "ExportRejectedError",
    "NoAdapterError",
    "Radio",
    "RadioError",
    "RadioPermissionError",
    "RadioSighting",
    "RadioStateError",
    "ReportError",
    "ReportResult",
    "ServerUnavailableError",
    "SightingRecord",
    "StoreCorruptError",
    "StoreError",
    "StoreKeyError",
    "StoredKey",
    "SyncError",
    "SyncResult",
    "TickResult",
    "load_config",
]
