"""Plain values of matching and scoring: sightings, matches, exposure windows.

``protocol_spec/SPEC.md`` §8 (MATCH) and §9 (WIN). The diagnosis key itself is the shared
wire value :class:`phe_trace.protocol.diagnosis_key.DiagnosisKey`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from enum import IntEnum

from phe_trace.crypto import AEM_LENGTH, RPI_LENGTH, CalibrationConfidence, Metadata
from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType

from .errors import SightingError

__all__ = [
    "ExposureWindow",
    "Infectiousness",
    "Match",
    "MatchResult",
    "RejectedKey",
    "ScanInstance",
    "Sighting",
]

#: Seconds per UTC day (window days are UTC days since 1970-01-01).
SECONDS_PER_DAY = 86_400


class Infectiousness(IntEnum):
    """GAEN infectiousness of a key, from its days since onset of symptoms (WIN-5)."""

    NONE = 0
    STANDARD = 1
    HIGH = 2


@dataclass(frozen=True, slots=True)
class Sighting:
    """One received advertisement: what the radio heard, when, and how loud (MATCH-1).

    ``rssi`` is the measured RSSI in dBm; ``rssi_correction`` is this receiver's
    calibration offset in dB (added to ``rssi``); ``calibration_confidence`` is how well the
    receiver knows that offset. ``unix_time`` is seconds since the epoch (UTC).
    """

    rpi: bytes
    aem: bytes
    rssi: int
    unix_time: float
    rssi_correction: int = 0
    calibration_confidence: CalibrationConfidence = CalibrationConfidence.LOWEST

    def __post_init__(self) -> None:
        if not isinstance(self.rpi, bytes) or len(self.rpi) != RPI_LENGTH:
            raise SightingError(f"rpi must be {RPI_LENGTH} bytes")
        if not isinstance(self.aem, bytes) or len(self.aem) != AEM_LENGTH:
            raise SightingError(f"aem must be {AEM_LENGTH} bytes")
        for name in ("rssi", "rssi_correction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not -200 <= value <= 200:
                raise SightingError(f"{name} must be an int in -200..200 dB(m), got {value!r}")
        t = self.unix_time
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
            raise SightingError(f"unix_time must be a finite number >= 0, got {t!r}")
        object.__setattr__(
            self, "calibration_confidence", CalibrationConfidence(self.calibration_confidence)
        )


@dataclass(frozen=True, slots=True)
class Match:
    """A sighting of one of a diagnosis key's identifiers, inside the time tolerance (MATCH-3).

    ``interval`` is the ENIntervalNumber whose identifier was seen. ``metadata`` is the
    decrypted associated metadata, or ``None`` when it does not decode (unknown major
    version): such a match cannot give an attenuation and is left out of windows (WIN-2).
    """

    diagnosis_key: DiagnosisKey
    sighting: Sighting
    interval: int
    metadata: Metadata | None

    @property
    def attenuation_db(self) -> int | None:
        """``max(tx_power − (rssi + rssi_correction), 0)`` in dB, or ``None`` (WIN-2)."""
        if self.metadata is None:
            return None
        s = self.sighting
        return max(self.metadata.tx_power_dbm - (s.rssi + s.rssi_correction), 0)


@dataclass(frozen=True, slots=True)
class RejectedKey:
    """A malformed diagnosis key that :func:`match` refused (MATCH-6).

    ``position`` is its 0-based position in the input; ``reason`` names the field and
    never contains key material.
    """

    position: int
    reason: str


@dataclass(frozen=True, slots=True)
class MatchResult:
    """What :func:`match` found: the matches, and the keys it refused one by one."""

    matches: tuple[Match, ...]
    keys_checked: int
    rejected: tuple[RejectedKey, ...] = ()

    @property
    def keys_rejected(self) -> int:
        """How many input keys were refused as malformed."""
        return len(self.rejected)


@dataclass(frozen=True, slots=True)
class ScanInstance:
    """Sightings of one key within one scan, summarised (WIN-3)."""

    typical_attenuation_db: int
    min_attenuation_db: int
    seconds_since_last_scan: int


@dataclass(frozen=True, slots=True)
class ExposureWindow:
    """At most 30 minutes of one key's sightings (GAEN v2 ExposureWindow, WIN-1).

    ``day`` is the UTC day (days since 1970-01-01) the window starts on.
    """

    day: int
    report_type: ReportType
    infectiousness: Infectiousness
    calibration_confidence: CalibrationConfidence
    scan_instances: tuple[ScanInstance, ...]
    transmission_risk_level: int = 0
    start_unix_time: float = field(default=0.0, compare=False)

    @property
    def date(self) -> dt.date:
        """The UTC calendar date of :attr:`day`."""
        return dt.date(1970, 1, 1) + dt.timedelta(days=self.day)

    @property
    def duration_seconds(self) -> int:
        """Sum of the scan instances' ``seconds_since_last_scan``."""
        return sum(s.seconds_since_last_scan for s in self.scan_instances)
