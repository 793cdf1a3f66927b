"""The diagnosis key: a Temporary Exposure Key as published, shared by every role.

The fields are those of GAEN's ``TemporaryExposureKey`` export record
(``protocol_spec/SPEC.md`` §12) in the protocol's own words. A ``DiagnosisKey`` is a plain
value: it does not validate itself on construction (export files in the wild contain
odd records and a reader must be able to hold them); :meth:`DiagnosisKey.check` says
what is wrong with one, so consumers can refuse malformed keys one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from phe_trace.crypto import KEY_LENGTH, MAX_INTERVAL, TEK_ROLLING_PERIOD

__all__ = [
    "MAX_DAYS_SINCE_ONSET",
    "MAX_TRANSMISSION_RISK_LEVEL",
    "DiagnosisKey",
    "ReportType",
]

#: Largest transmission risk level (GAEN publish API: 0..8).
MAX_TRANSMISSION_RISK_LEVEL = 8
#: Largest |days since onset of symptoms| that carries meaning (GAEN: −14..+14).
MAX_DAYS_SINCE_ONSET = 14


class ReportType(IntEnum):
    """GAEN report type of a diagnosis key (export proto ``ReportType``)."""

    UNKNOWN = 0
    CONFIRMED_TEST = 1
    CONFIRMED_CLINICAL_DIAGNOSIS = 2
    SELF_REPORT = 3
    RECURSIVE = 4
    REVOKED = 5


@dataclass(frozen=True, slots=True)
class DiagnosisKey:
    """A published Temporary Exposure Key and what the health authority attached to it.

    ``rolling_start_interval_number`` need not be day-aligned and ``rolling_period`` may
    be below 144: both occur in real exports and are legal.
    """

    key_data: bytes
    rolling_start_interval_number: int
    rolling_period: int = TEK_ROLLING_PERIOD
    transmission_risk_level: int = 0
    report_type: ReportType = ReportType.UNKNOWN
    days_since_onset_of_symptoms: int | None = None

    def check(self) -> str | None:
        """``None`` if the key is well-formed, else a one-line reason naming the field."""
        if not isinstance(self.key_data, bytes) or len(self.key_data) != KEY_LENGTH:
            got = len(self.key_data) if isinstance(self.key_data, bytes) else "non-bytes"
            return f"key_data must be {KEY_LENGTH} bytes, got {got}"
        start, period = self.rolling_start_interval_number, self.rolling_period
        if not 0 <= start <= MAX_INTERVAL:
            return f"rolling_start_interval_number {start} is outside 0..{MAX_INTERVAL}"
        if not 1 <= period <= TEK_ROLLING_PERIOD:
            return f"rolling_period {period} is outside 1..{TEK_ROLLING_PERIOD}"
        if start + period - 1 > MAX_INTERVAL:
            return "rolling_start_interval_number + rolling_period overflows uint32"
        if not 0 <= self.transmission_risk_level <= MAX_TRANSMISSION_RISK_LEVEL:
            return (
                f"transmission_risk_level {self.transmission_risk_level} is outside "
                f"0..{MAX_TRANSMISSION_RISK_LEVEL}"
            )
        if self.report_type not in ReportType.__members__.values():
            return f"report_type {self.report_type} is unknown"
        return None

    @property
    def end_interval_number(self) -> int:
        """The first interval after the key's validity (exclusive end)."""
        return self.rolling_start_interval_number + self.rolling_period
