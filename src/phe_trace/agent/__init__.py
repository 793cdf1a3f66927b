"""The device agent: broadcast, listen, remember for 14 days, match, notify.

``protocol_spec/SPEC.md`` §14. :class:`Agent` is the whole agent behind a synchronous
step API driven by an injected clock (see :mod:`phe_trace.agent.agent`); radios are in
:mod:`phe_trace.agent.radio` (``bluez``, ``bumble``, ``sim``).
"""

from typing import TYPE_CHECKING, Any

from .agent import Agent, TickResult
from .config import AgentConfig, load_config
from .errors import (
    AgentConfigError,
    AgentError,
    BluezUnavailableError,
    BluezVersionError,
    ExportNotFoundError,
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
from .store import AgentStore

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentConfigError",
    "AgentError",
    "AgentStore",
    "BluezUnavailableError",
    "BluezVersionError",
    "ExportNotFoundError",
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

if TYPE_CHECKING:
    from .report import ReportResult
    from .sync import SyncResult


def __getattr__(name: str) -> Any:
    """Import the sync and report results on first use: an idle agent never loads the
    matcher, the export reader or the HTTP client (resident memory, AGENT-12)."""
    if name == "SyncResult":
        from .sync import SyncResult

        return SyncResult
    if name == "ReportResult":
        from .report import ReportResult

        return ReportResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
