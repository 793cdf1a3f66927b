"""When the agent changes keys, rotates identifiers and scans (AGENT-3 … AGENT-5).

Pure bookkeeping driven by the ``now`` it is given; the randomness source is injectable
so tests can pin it. The key schedule itself is :mod:`phe_trace.crypto`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from phe_trace.crypto import (
    TEK_ROLLING_PERIOD,
    Metadata,
    aemk,
    en_interval_number,
    encrypt_metadata,
    rolling_start_interval_number,
    rpi,
    rpik,
    rpis_bytes,
)
from phe_trace.protocol.advertisement import build_service_data

__all__ = ["ActiveKey", "RotationPlan", "ScanPlan", "tek_day"]


def tek_day(now: float) -> int:
    """The TEK day (``rolling_start_interval_number // 144``) holding ``now``."""
    return rolling_start_interval_number(en_interval_number(now)) // TEK_ROLLING_PERIOD


@dataclass(frozen=True, slots=True)
class ActiveKey:
    """The current Temporary Exposure Key with its derived keys, cached per day, and the
    identifiers of the day's 144 intervals (derived at once, KEY-5)."""

    day: int
    tek: bytes
    rpik: bytes
    aemk: bytes
    rpis: bytes = b""

    @classmethod
    def derive(cls, day: int, tek: bytes) -> ActiveKey:
        key = rpik(tek)
        return cls(day, tek, key, aemk(tek), rpis_bytes(key, day * TEK_ROLLING_PERIOD))

    def identifier(self, interval: int) -> bytes:
        """The RPI of ``interval`` (KEY-4)."""
        j = interval - self.day * TEK_ROLLING_PERIOD
        if 0 <= j < TEK_ROLLING_PERIOD and len(self.rpis) == TEK_ROLLING_PERIOD * 16:
            return self.rpis[16 * j : 16 * j + 16]
        return rpi(self.rpik, interval)

    def payload(self, now: float, metadata: Metadata) -> bytes:
        """The 20-byte service data for ``now``: RPI of its interval ‖ AEM (AGENT-4)."""
        identifier = self.identifier(en_interval_number(now))
        return build_service_data(
            identifier, encrypt_metadata(self.aemk, identifier, metadata.to_bytes())
        )


@dataclass(slots=True)
class RotationPlan:
    """Next identifier change: a random 10–20 min period, and always at a new key day."""

    min_s: float
    max_s: float
    rng: random.Random
    next_at: float | None = None
    day: int | None = None

    def due(self, now: float, day: int) -> bool:
        """Whether the identifier must change at ``now`` (first call, period, new day)."""
        return self.next_at is None or now >= self.next_at or day != self.day

    def rotated(self, now: float, day: int) -> None:
        self.day = day
        self.next_at = now + self.rng.uniform(self.min_s, self.max_s)


@dataclass(slots=True)
class ScanPlan:
    """Next scan window: every ``period_s`` minus a random jitter (AGENT-5)."""

    period_s: float
    jitter_s: float
    rng: random.Random
    next_at: float | None = None

    def due(self, now: float) -> bool:
        return self.next_at is None or now >= self.next_at

    def scanned(self, now: float) -> None:
        self.next_at = now + self.period_s - self.rng.uniform(0.0, self.jitter_s)
