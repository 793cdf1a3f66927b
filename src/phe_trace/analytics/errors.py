"""Errors of the aggregate-statistics library (``protocol_spec/SPEC.md`` §15).

::

    PheTraceError
    └── AnalyticsError                  any failure in phe_trace.analytics
        ├── EncodingError               a value, length or parameter the encoding refuses
        ├── ReportRejectedError         a report failed preparation (opaque: bad proof,
        │                               out-of-range value, wrong length, joint-rand mismatch)
        └── PrivacyBudgetError          a release would exceed its epsilon budget or the
                                        batch is below the minimum size
"""

from __future__ import annotations

from phe_trace.errors import PheTraceError

__all__ = ["AnalyticsError", "EncodingError", "PrivacyBudgetError", "ReportRejectedError"]


class AnalyticsError(PheTraceError):
    """Root of the analytics branch."""

    code = "analytics_error"


class EncodingError(AnalyticsError):
    """Raised when a measurement, a share's length or a parameter is outside its domain."""

    code = "analytics_encoding"


class ReportRejectedError(AnalyticsError):
    """Raised when a report is rejected during preparation.

    Deliberately opaque: the message never says which check failed, so a dishonest
    client learns nothing from the rejection.
    """

    code = "report_rejected"

    def __init__(self, message: str = "report rejected") -> None:
        super().__init__(message)


class PrivacyBudgetError(AnalyticsError):
    """Raised when a release would exceed its ε budget or its batch is too small."""

    code = "privacy_budget"
