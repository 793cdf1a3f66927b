"""The simulator's own, independent reading of what devices recorded.

Used for two things, never by production code:

- the *trade-off curve*: given every published diagnosis key and every device's stored
  sightings (read back from the real agents' stores), which people would a given
  attenuation threshold notify? One global table RPI → key makes this a dictionary
  look-up per sighting, so hundreds of thresholds cost almost nothing;
- a *stand-in matcher* for the demo while a build has no device-side matching: the same
  rule, applied at the configured thresholds.

The rule (GAEN v2 daily summary, simplified): every matched sighting record stands for
one scan period; its attenuation is ``tx_power (from the decrypted metadata) − rssi``;
its time is weighted by the bucket of that attenuation; a person is notified on a day
whose weighted minutes reach the threshold. Matching accepts an identifier heard within
12 intervals (±2 hours) of its own interval (``protocol_spec/SPEC.md``, MATCH-3).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from phe_trace.crypto import (
    INTERVAL_SECONDS,
    Metadata,
    aemk,
    decrypt_metadata,
    rpik,
    rpis_bytes,
)

from .config import RiskConfig

__all__ = ["ExposureTable", "MatchedSighting", "PublishedKey", "weighted_minutes"]

_TOLERANCE_INTERVALS = 12


@dataclass(frozen=True, slots=True)
class PublishedKey:
    """A diagnosis key as the simulator knows it (and who published it, for the truth)."""

    key_data: bytes
    rolling_start_interval_number: int
    rolling_period: int
    reporter: int


@dataclass(frozen=True, slots=True)
class MatchedSighting:
    """One of a device's sighting records that matched a published key."""

    unix_time: float
    attenuation_db: int
    reporter: int


class ExposureTable:
    """RPI → (key, interval) for every published key; derived once, looked up per sighting."""

    def __init__(self) -> None:
        self._rpis: dict[bytes, tuple[int, int]] = {}
        self._keys: list[PublishedKey] = []
        self._aemks: list[bytes] = []

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, rpi_: object) -> bool:
        """Whether ``rpi_`` is an identifier of any published key."""
        return rpi_ in self._rpis

    def add(self, keys: Iterable[PublishedKey]) -> None:
        for key in keys:
            index = len(self._keys)
            self._keys.append(key)
            self._aemks.append(aemk(key.key_data))
            start, period = key.rolling_start_interval_number, key.rolling_period
            data = rpis_bytes(rpik(key.key_data), start, period)
            for i in range(period):
                self._rpis[data[16 * i : 16 * i + 16]] = (index, start + i)

    def match(
        self, records: Iterable[tuple[bytes, bytes, float, int]], rssi_correction_db: int = 0
    ) -> list[MatchedSighting]:
        """Match ``(rpi, aem, unix_time, rssi)`` records; keeps those within tolerance."""
        out = []
        for rpi_, aem, unix_time, rssi in records:
            hit = self._rpis.get(rpi_)
            if hit is None:
                continue
            index, interval = hit
            if abs(int(unix_time // INTERVAL_SECONDS) - interval) > _TOLERANCE_INTERVALS:
                continue
            metadata = Metadata.from_bytes(decrypt_metadata(self._aemks[index], rpi_, aem))
            attenuation = metadata.tx_power_dbm - (rssi + rssi_correction_db)
            out.append(MatchedSighting(unix_time, attenuation, self._keys[index].reporter))
        return out


def weighted_minutes(attenuation_db: np.ndarray, scan_minutes: float, risk: RiskConfig) -> float:
    """Weighted exposure minutes of the given attenuations under ``risk``'s buckets."""
    t1, t2, t3 = risk.attenuation_thresholds_db
    w = np.select(
        [attenuation_db <= t1, attenuation_db <= t2, attenuation_db <= t3],
        list(risk.bucket_weights[:3]),
        default=risk.bucket_weights[3],
    )
    return float(w.sum() * scan_minutes)
