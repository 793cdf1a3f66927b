"""The simulation's parameters, checked at the door (one error names every bad field)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import SimConfigError

__all__ = [
    "MAX_PEOPLE",
    "RADIO_BACKENDS",
    "SIM_EPOCH",
    "RiskConfig",
    "SimConfig",
]

#: Midnight UTC of Monday 2 March 2026: day 0 of every simulation (interval-aligned).
SIM_EPOCH = 1_772_409_600
#: Largest city the demo accepts.
MAX_PEOPLE = 20_000
#: Radio backends the demo can drive.
RADIO_BACKENDS = ("sim", "bumble")


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """The health authority's scoring rule the demo evaluates (GAEN v2 daily summary).

    Scan time is weighted by the attenuation bucket it falls in
    (``≤ immediate``, ``≤ near``, ``≤ medium``, above); a person is notified when the
    weighted minutes of one day, summed over all matched keys, reach ``minimum_minutes``.
    """

    attenuation_thresholds_db: tuple[int, int, int] = (55, 63, 70)
    bucket_weights: tuple[float, float, float, float] = (1.0, 1.0, 0.5, 0.0)
    minimum_minutes: float = 15.0


@dataclass(frozen=True, slots=True)
class SimConfig:
    """One simulated city and run. ``check()`` validates; :func:`SimConfig.create` does both."""

    people: int = 1_000
    days: int = 14
    seed: int = 1
    uptake: float = 0.5
    report_rate: float = 0.8
    out: Path = Path("demo-report")
    radio: str = "sim"
    #: People infected before day 0 (at least one).
    initial_infected: int = 0
    #: Scan period of every device, seconds (GAEN scans at least every 5 minutes).
    scan_period_s: int = 300
    #: Devices in an encounter are ticked this often (seconds): the agent rotates its
    #: identifier when due (every 10–20 minutes) and stores what its radio heard.
    radio_step_s: int = 1200
    #: Hours (UTC, simulated) at which the export worker runs each day.
    export_hours: tuple[int, ...] = (1, 13)
    #: Length of one export batch window (seconds); a batch is written an hour after it ends.
    export_period_s: int = 43_200
    #: Exports with fewer keys are padded with random keys up to this many.
    export_padding_keys: int = 0
    #: Devices driven over the bumble radio (virtual HCI) with ``radio="bumble"``.
    bumble_devices: int = 4
    risk: RiskConfig = field(default_factory=RiskConfig)
    #: Aggregate statistics: fewer device reports than this for a day and metric and the
    #: aggregators release nothing (the aggregator's default).
    analytics_min_batch: int = 100
    #: ε of each released (day, metric) aggregate (the aggregator's default).
    analytics_epsilon: float = 1.0
    #: Cities (1 or 2). With 2, each has ``people`` people, its own key server and
    #: verification service, and the key servers federate through a gateway.
    cities: int = 1
    #: Two cities: share of each city's workers who also work with a team of the other.
    commuter_share: float = 0.4
    #: Two cities: hours (UTC, simulated) at which both key servers run their federation
    #: job (upload, then download after the gateway formed its batches).
    federation_hours: tuple[int, ...] = (5, 11, 17, 23)
    #: Two cities: a key is uploaded once it expired this long ago (the client's default).
    federation_upload_delay_s: int = 7200

    @classmethod
    def create(cls, **kwargs: object) -> SimConfig:
        config = cls(**kwargs)  # type: ignore[arg-type]
        config.check()
        return config

    def keys_available_at(self, published: float, key_day: int) -> float:
        """When keys published at ``published`` reach devices: the first export run after
        their batch window ended (and, for the key of the report day itself, after that
        day ended — the key server embargoes keys still valid)."""
        ready = (published // self.export_period_s + 1) * self.export_period_s
        ready = max(ready, (key_day + 1) * 86_400.0 + SIM_EPOCH)
        day = (ready - SIM_EPOCH) // 86_400
        while True:
            for hour in self.export_hours:
                run = SIM_EPOCH + day * 86_400 + hour * 3600
                if run >= ready + 3600:
                    return float(run)
            day += 1

    def federated_keys_available_at(self, published: float, key_day: int) -> float:
        """When keys published at ``published`` in one city reach the other city's
        devices: the first federation run once they are published and expired
        ``federation_upload_delay_s`` ago (uploaded, batched and imported in that run),
        then the other city's first export run that may carry what it imported then."""
        ready = max(
            published, SIM_EPOCH + (key_day + 1) * 86_400.0 + self.federation_upload_delay_s
        )
        day = (ready - SIM_EPOCH) // 86_400
        while True:
            for hour in self.federation_hours:
                run = SIM_EPOCH + day * 86_400 + hour * 3600
                if run >= ready:
                    return self.keys_available_at(float(run), key_day)
            day += 1

    @property
    def seeds(self) -> int:
        """How many people are infected before day 0 (in all cities together)."""
        return self.initial_infected or self.cities * max(3, round(self.people * 0.01))

    def check(self) -> None:
        """Raise :class:`SimConfigError` naming every out-of-range parameter."""
        problems = []
        if not 10 <= self.people <= MAX_PEOPLE:
            problems.append(f"--people must be 10..{MAX_PEOPLE}, got {self.people}")
        if not 1 <= self.days <= 60:
            problems.append(f"--days must be 1..60, got {self.days}")
        if not 0.0 <= self.uptake <= 1.0:
            problems.append(f"--uptake must be 0..1, got {self.uptake}")
        if not 0.0 <= self.report_rate <= 1.0:
            problems.append(f"--report-rate must be 0..1, got {self.report_rate}")
        if self.radio not in RADIO_BACKENDS:
            problems.append(f"--radio must be one of {', '.join(RADIO_BACKENDS)}, got {self.radio}")
        if not 0 <= self.seed < 2**32:
            problems.append(f"--seed must be 0..{2**32 - 1}, got {self.seed}")
        if not 0 <= self.initial_infected <= self.people:
            problems.append(f"initial_infected must be 0..people, got {self.initial_infected}")
        if self.scan_period_s not in (60, 120, 150, 200, 300, 600):
            problems.append(f"scan_period_s must divide 600, got {self.scan_period_s}")
        if self.analytics_min_batch < 1:
            problems.append(f"analytics_min_batch must be ≥ 1, got {self.analytics_min_batch}")
        if not 0 < self.analytics_epsilon <= 100:
            problems.append(f"analytics_epsilon must be in (0, 100], got {self.analytics_epsilon}")
        if self.cities not in (1, 2):
            problems.append(f"--cities must be 1 or 2, got {self.cities}")
        if not 0.0 <= self.commuter_share <= 1.0:
            problems.append(f"commuter_share must be 0..1, got {self.commuter_share}")
        if self.out.exists() and not self.out.is_dir():
            problems.append(f"--out {self.out} exists and is not a directory")
        if problems:
            raise SimConfigError("; ".join(problems))
