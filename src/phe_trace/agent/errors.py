"""Errors of the device agent (``phe_trace.agent``).

::

    AgentError
    ├── RadioError                  the radio could not advertise or scan
    │   ├── NoAdapterError          no Bluetooth adapter (or not the configured one)
    │   ├── BluezUnavailableError   BlueZ (bluetoothd) is not running / not on the bus
    │   ├── BluezVersionError       BlueZ lacks the LE advertising API we need
    │   ├── RadioPermissionError    the bus or adapter refused us (group / capabilities)
    │   └── RadioStateError         a call out of order (rotate before start, use after close)
    ├── StoreError                  the local store cannot be used
    │   ├── StoreMissingError       no store in the data directory (never run, or wiped)
    │   ├── StoreCorruptError       the database file is damaged; it was moved aside
    │   └── StoreKeyError           the sealing key does not open the store
    ├── SyncError                   downloading or checking published keys failed
    │   ├── ServerUnavailableError  the key server could not be reached / kept failing
    │   ├── DownloadError           a download failed in a way retrying cannot mend
    │   │   └── DownloadTooLargeError  a file over the size cap
    │   ├── ExportNotFoundError     the server answered 404 (index.txt: nothing published)
    │   └── ExportRejectedError     an export file failed its signature or format check
    ├── ReportError                 the verification or publish step refused the report
    ├── AgentConfigError            the agent's settings are invalid
    └── AnalyticsConfigError        the published analytics configuration cannot be used
"""

from __future__ import annotations

from phe_trace.errors import PheTraceError

__all__ = [
    "AgentConfigError",
    "AgentError",
    "AnalyticsConfigError",
    "BluezUnavailableError",
    "BluezVersionError",
    "DownloadError",
    "DownloadTooLargeError",
    "ExportRejectedError",
    "NoAdapterError",
    "RadioError",
    "RadioPermissionError",
    "RadioStateError",
    "ReportError",
    "ServerUnavailableError",
    "StoreCorruptError",
    "StoreError",
    "StoreKeyError",
    "StoreMissingError",
    "SyncError",
]


class AgentError(PheTraceError):
    """Base class of the device agent's errors."""

    code = "agent_error"


class RadioError(AgentError):
    """Raised when the radio backend cannot advertise or scan."""

    code = "radio_error"


class NoAdapterError(RadioError):
    """Raised when no Bluetooth adapter exists (or not the configured ``hciN``)."""

    code = "no_adapter"


class BluezUnavailableError(RadioError):
    """Raised when ``org.bluez`` is not on the system bus (bluetoothd not running)."""

    code = "bluez_unavailable"


class BluezVersionError(RadioError):
    """Raised when BlueZ lacks ``LEAdvertisingManager1`` (older than 5.43 or not enabled)."""

    code = "bluez_too_old"


class RadioPermissionError(RadioError):
    """Raised when D-Bus policy or the kernel refuses the call (group or capabilities)."""

    code = "radio_permission_denied"


class RadioStateError(RadioError):
    """Raised on a call out of order: rotate before start, anything after close."""

    code = "radio_state"


class StoreError(AgentError):
    """Raised when the local encrypted store cannot be used."""

    code = "store_error"


class StoreMissingError(StoreError):
    """Raised by a reading command when the data directory holds no store: the agent never
    ran there, or the store was wiped (nothing is created)."""

    code = "store_missing"


class StoreCorruptError(StoreError):
    """Raised when the database file is damaged; the file is moved aside, never deleted."""

    code = "store_corrupt"


class StoreKeyError(StoreError):
    """Raised when the sealing key does not open the store's records (wrong or lost key)."""

    code = "store_key_mismatch"


class SyncError(AgentError):
    """Raised when downloading or checking the published diagnosis keys fails."""

    code = "sync_failed"


class ServerUnavailableError(SyncError):
    """Raised when the key server cannot be reached or keeps failing after the retries."""

    code = "server_unavailable"


class DownloadError(SyncError):
    """Raised when a download fails in a way a retry cannot mend: an HTTP error answer,
    a body that does not decode, a redirect loop, a URL the HTTP client refuses."""

    code = "download_failed"


class DownloadTooLargeError(DownloadError):
    """Raised when a file is (or is announced) larger than the download size cap."""

    code = "download_too_large"


class ExportNotFoundError(SyncError):
    """Raised by a download the server answers 404 (for ``index.txt``: nothing published yet)."""

    code = "export_not_found"


class ExportRejectedError(SyncError):
    """Raised when an export file fails its signature or format check; it is never matched."""

    code = "export_rejected"


class ReportError(AgentError):
    """Raised when the verification service or key server refuses a report; carries its code."""

    code = "report_failed"

    def __init__(self, message: str, *, server_code: str | None = None) -> None:
        super().__init__(message)
        self.server_code = server_code


class AgentConfigError(AgentError):
    """Raised when the agent's settings are invalid (all problems reported at once)."""

    code = "agent_config_invalid"


class AnalyticsConfigError(AgentError):
    """The analytics configuration is missing, unverifiable or differs from the pin."""

    code = "analytics_config"
