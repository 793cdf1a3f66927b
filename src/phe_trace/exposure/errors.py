"""Errors of exposure matching and risk scoring (``phe_trace.exposure``).

::

    ExposureError
    ├── SightingError     raised when a Sighting is malformed (identifier length, RSSI, time)
    ├── MatchInputError   raised when match() gets arguments it cannot use (tolerance, workers)
    └── ExposureConfigError  raised when a scoring configuration is invalid; names the field

Malformed *diagnosis keys* are not errors: :func:`phe_trace.exposure.match` refuses them
one by one and reports them in ``MatchResult.rejected`` (SPEC MATCH-6).
"""

from __future__ import annotations

from phe_trace.errors import PheTraceError

__all__ = ["ExposureConfigError", "ExposureError", "MatchInputError", "SightingError"]


class ExposureError(PheTraceError):
    """Base class of the exposure library's errors."""

    code = "exposure_error"


class SightingError(ExposureError, ValueError):
    """A :class:`~phe_trace.exposure.Sighting` with a field of the wrong type or range."""

    code = "invalid_sighting"


class MatchInputError(ExposureError, ValueError):
    """An argument of :func:`~phe_trace.exposure.match` outside its allowed range."""

    code = "invalid_match_input"


class ExposureConfigError(ExposureError, ValueError):
    """A scoring configuration that is refused; ``field`` is the dotted path of the culprit.

    The message names the field, the value and the rule it breaks, e.g.
    ``daily_summaries.attenuation_bucket_weights[2]: 3.0 is outside 0..2.5``.
    """

    code = "invalid_exposure_config"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
