"""Errors of the city simulator (``phe_trace.sim``).

::

    PheTraceError
    └── SimError                    anything the simulator refuses or cannot do
        ├── SimConfigError          a demo parameter out of range (people, days, rates, radio)
        └── SimBackendError         the key server or verification service did not behave
"""

from __future__ import annotations

from phe_trace.errors import PheTraceError

__all__ = ["SimBackendError", "SimConfigError", "SimError"]


class SimError(PheTraceError):
    """Base of the simulator's errors."""

    code = "sim_error"


class SimConfigError(SimError):
    """Raised when a simulation parameter is out of range; the message names it and the bound."""

    code = "sim_config_invalid"


class SimBackendError(SimError):
    """Raised when the real server under the demo fails to start or answers unexpectedly."""

    code = "sim_backend_failed"
