"""Errors of the conformance checker.

::

    PheTraceError
    └── ConformanceError             any error of the conformance checker
        ├── ConformanceConfigError   an option is missing or invalid (PEM, URL, numbers)
        ├── ConformanceFailedError   the battery ran and at least one check failed
        ├── CheckFailedError         inside a check: the server contradicts the requirement
        └── CheckSkippedError        inside a check: it cannot run with the options given

A check that *fails* is a row of the report, not an exception that leaves the battery:
the runner turns :class:`CheckFailedError` and :class:`CheckSkippedError` into ``fail``
and ``skip`` rows. The command raises :class:`ConformanceFailedError` once, after
printing the report, so it exits non-zero.
"""

from __future__ import annotations

from phe_trace.errors import PheTraceError

__all__ = [
    "CheckFailedError",
    "CheckSkippedError",
    "ConformanceConfigError",
    "ConformanceError",
    "ConformanceFailedError",
]


class ConformanceError(PheTraceError):
    """Raised when the conformance battery cannot be run."""

    code = "conformance_error"


class ConformanceConfigError(ConformanceError):
    """Raised when an option of the checker is missing or invalid (PEM key, URL, number)."""

    code = "conformance_config_invalid"


class ConformanceFailedError(ConformanceError):
    """Raised by ``phe-trace conformance`` after the report when a check failed (or none ran)."""

    code = "conformance_failed"


class CheckFailedError(ConformanceError):
    """Raised inside a check when the server's behaviour contradicts the requirement; the
    runner reports it as a ``fail`` row and goes on with the next check."""

    code = "check_failed"


class CheckSkippedError(ConformanceError):
    """Raised inside a check that cannot run with the options given (e.g. no export key);
    the runner reports it as a ``skip`` row."""

    code = "check_skipped"
