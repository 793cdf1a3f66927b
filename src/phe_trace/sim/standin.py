"""The stand-in key server and device check, for builds without the real ones.

When the real key server (``phe_trace.hosting``) or the agent's sync and report are not
part of the build, the demo still runs end to end with this: reported keys are read
from the reporting agent's own store, "published" in batches at the export worker's
hours, and each device's stored sightings are matched against them with the
simulator's reference rule (:mod:`phe_trace.sim.reference`). Download sizes are then
*estimated* from the GAEN export format (about 30 bytes per key plus a fixed overhead
for header, signature and zip). The report says so whenever this is in use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import SimConfig
from .fleet import Fleet
from .outbreak import Report
from .reference import ExposureTable, PublishedKey, weighted_minutes

__all__ = ["StandInBackend", "SyncOutcome"]

_BYTES_PER_KEY = 30
_BYTES_PER_FILE = 700
_INDEX_BYTES_PER_FILE = 60


@dataclass(slots=True)
class SyncOutcome:
    """What one device's daily check did."""

    notified: bool
    bytes_downloaded: int
    matched: int = 0
    exposure_days: list[int] = field(default_factory=list)
    #: The check's risk level: 0 no scored exposure, 1 low, 2 high.
    risk_level: int = 0
    #: Simulated day of the latest exposure the check found, if any.
    last_exposure_day: int | None = None


class StandInBackend:
    """In-memory key publication and the reference matcher (see the module docstring)."""

    real = False
    description = "stand-in key server and device matching (reference rule, in memory)"

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.risk = config.risk
        self.scan_minutes = config.scan_period_s / 60.0
        self.table = ExposureTable()
        self._pending: list[tuple[float, PublishedKey]] = []
        self._batches: list[tuple[float, int, int]] = []  # time, keys, bytes
        self._seen: dict[int, int] = {}

    def report(self, fleet: Fleet, report: Report, now: float) -> int:
        person = report.person
        agent = fleet.agents[person]
        agent.tick(now)
        fleet.tick(person, now)
        keys = [
            PublishedKey(k.key_data, k.rolling_start_interval_number, k.rolling_period, person)
            for k in agent.store.teks()
            if now - 14 * 86_400 < k.rolling_start_interval_number * 600 <= now
        ]
        for key in keys:
            day = key.rolling_start_interval_number // 144
            self._pending.append((self.config.keys_available_at(now, day), key))
        return len(keys)

    def export(self, now: float) -> int:
        keys = [k for t, k in self._pending if t <= now]
        if not keys:
            return 0
        self._pending = [(t, k) for t, k in self._pending if t > now]
        self.table.add(keys)
        self._batches.append((now, len(keys), _BYTES_PER_FILE + _BYTES_PER_KEY * len(keys)))
        return len(keys)

    def sync(self, fleet: Fleet, person: int, now: float) -> SyncOutcome:
        fleet.tick(person, now)
        seen = self._seen.get(person, 0)
        new = self._batches[seen:]
        self._seen[person] = len(self._batches)
        downloaded = _INDEX_BYTES_PER_FILE * len(self._batches) + sum(b for _, _, b in new)
        if not len(self.table):
            return SyncOutcome(False, downloaded)
        matched = self.table.match(fleet.sightings(person))
        by_day: dict[int, list[int]] = {}
        for m in matched:
            by_day.setdefault(int(m.unix_time // 86_400), []).append(m.attenuation_db)
        days = [
            d
            for d, att in by_day.items()
            if weighted_minutes(np.array(att), self.scan_minutes, self.risk)
            >= self.risk.minimum_minutes
        ]
        return SyncOutcome(bool(days), downloaded, len(matched), sorted(days))

    def storage(self) -> dict[str, Any]:
        return {
            "kind": "stand-in (in memory)",
            "tables": {
                "published keys": {
                    "rows": len(self.table),
                    "columns": ["key_data", "rolling_start_interval_number", "rolling_period"],
                }
            },
            "identity_columns": [],
        }

    def risk_rule(self) -> dict[str, Any]:
        return {
            "source": "the simulator's reference rule (stand-in)",
            "thresholds_db": list(self.risk.attenuation_thresholds_db),
            "bucket_weights": list(self.risk.bucket_weights),
            "notify_at_weighted_minutes_per_day": self.risk.minimum_minutes,
        }

    def close(self) -> None:
        self._pending.clear()
