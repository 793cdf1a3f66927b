"""Errors of the conformance checker.

::

    PheTraceError
    └── ConformanceError             the checker cannot run (bad options, unreadable key)
        ├── ConformanceConfigError   an option is missing or invalid (PEM, URL, numbers)
        └── ConformanceFailedError   the battery ran and at least one check failed

A check that *fails* is a row of the report, not an exception; the command raises
:class:`ConformanceFailedError` once, after printing the report, so it exits non-zero.
"""

from __future__ import annotations

from phe_trace.errors import PheTraceError

__all__ = ["ConformanceConfigError", "ConformanceError", "ConformanceFailedError"]


class ConformanceError(PheTraceError):
    """Raised when the conformance battery cannot be run."""

    code = "conformance_error"


class ConformanceConfigError(ConformanceError):
    """Raised when an option of the checker is missing or invalid (PEM key, URL, number)."""

    code = "conformance_config_invalid"


class ConformanceFailedError(ConformanceError):
    """Raised by ``phe-trace conformance`` after the report when a check failed (or none ran)."""

    code = "conformance_failed"
