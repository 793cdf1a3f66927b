"""How well it worked: notifications measured against the simulation's ground truth.

**Ground truth.** A person *should* have been notified by the end of the run when they
run the app and had a true close contact — at least 15 minutes within 2 m on one day,
from the simulated distances, never from radio measurements — with a person who
reported, on a day whose key that reporter published (the report day and up to 13 days
before), and when the reporter's keys were exported in time for one of the person's
daily checks before the run ended (and the contact was then still within the device's
14-day retention).

**Confusion.** Notified and should → true positive; notified but should not → false
positive (split into *near misses* — they did meet a reporter, only not closely or
long enough — and *no contact*); should but not notified → false negative.
Precision = TP / (TP + FP), recall = TP / (TP + FN), both ``None`` when undefined.

**Trade-off.** From the sightings every device stored (read back from the agents'
sealed stores) and the keys every reporter published, the reference rule
(:mod:`phe_trace.sim.reference`) is re-applied with one attenuation threshold moving
from 40 to 90 dB: what precision and recall would a health authority get?
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .config import SIM_EPOCH
from .outbreak import DAY_S
from .reference import ExposureTable
from .runner import SimResult

__all__ = ["Confusion", "Metrics", "TradeoffPoint", "compute_metrics"]


@dataclass(frozen=True, slots=True)
class Confusion:
    """Person-level confusion counts and the rates derived from them."""

    true_positives: int
    false_positives: int
    false_negatives: int
    near_miss_false_positives: int

    @property
    def precision(self) -> float | None:
        d = self.true_positives + self.false_positives
        return self.true_positives / d if d else None

    @property
    def recall(self) -> float | None:
        d = self.true_positives + self.false_negatives
        return self.true_positives / d if d else None


@dataclass(frozen=True, slots=True)
class TradeoffPoint:
    threshold_db: int
    precision: float | None
    recall: float | None
    notified: int


@dataclass
class Metrics:
    """Every number of the report (``summary.json`` is :meth:`as_dict`)."""

    confusion: Confusion
    should_notify: list[int]
    notified: list[int]
    tradeoff: list[TradeoffPoint]
    delays_h: list[float]
    bytes_per_device_day: dict[str, float]
    bytes_by_day_mean: list[float]
    daily: dict[str, list[int]] = field(default_factory=dict)
    #: Two cities: notifications of people exposed in the other city (see
    #: :func:`cross_city_metrics`); empty for one city.
    cross_city: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        c = self.confusion
        extra = {"cross_city": self.cross_city} if self.cross_city else {}
        return {
            **extra,
            "notifications": {
                "true_positives": c.true_positives,
                "false_positives": c.false_positives,
                "false_positives_near_miss": c.near_miss_false_positives,
                "false_negatives": c.false_negatives,
                "precision": c.precision,
                "recall": c.recall,
                "should_notify": len(self.should_notify),
                "notified": len(self.notified),
            },
            "tradeoff": [asdict(p) for p in self.tradeoff],
            "test_to_notification_hours": _describe(self.delays_h),
            "bytes_per_device_per_day": self.bytes_per_device_day,
            "bytes_per_device_by_day_mean": self.bytes_by_day_mean,
            "daily": self.daily,
        }


def _describe(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "median": None, "mean": None, "p90": None, "max": None}
    v = np.array(values)
    return {
        "count": len(values),
        "median": float(np.median(v)),
        "mean": float(v.mean()),
        "p90": float(np.percentile(v, 90)),
        "max": float(v.max()),
    }


class _Truth:
    """Which (person, reporter) close contacts a notification should have caught."""

    def __init__(self, result: SimResult) -> None:
        self.result = result
        published = [r for r in result.reports if r.person in result.report_keys]
        self.report_time = {r.person: SIM_EPOCH + r.time_s for r in published}
        self.result_time = {r.person: SIM_EPOCH + r.result_time_s for r in published}
        self.config = result.config

    def available(self, reporter: int, day: int, person: int | None = None) -> float | None:
        """When ``reporter``'s key of ``day`` reached ``person``'s device (``None``: not a
        reporter); for a person of the other city, through the federation."""
        t = self.report_time.get(reporter)
        if t is None:
            return None
        home = self.result.home_city
        if home is not None and person is not None and home[person] != home[reporter]:
            return self.config.federated_keys_available_at(t, day)
        return self.config.keys_available_at(t, day)

    def first_check_after(self, person: int, t: float) -> float | None:
        """The first daily check of ``person`` at or after ``t`` within the run."""
        hour = self.result.sync_hour.get(person)
        if hour is None:
            return None
        check = SIM_EPOCH + ((t - SIM_EPOCH) // DAY_S) * DAY_S + hour * 3600
        if check < t:
            check += DAY_S
        return check if check < self.result.end_time else None

    def eligible(self, person: int, reporter: int, day: int) -> bool:
        """Could ``person``'s device have caught a close contact with ``reporter`` on ``day``?"""
        available = self.available(reporter, day, person)
        if available is None:
            return False
        report_day = int((self.report_time[reporter] - SIM_EPOCH) // DAY_S)
        if not report_day - 13 <= day <= report_day:
            return False
        check = self.first_check_after(person, available)
        if check is None:
            return False
        return day >= int((check - SIM_EPOCH) // DAY_S) - 13

    def contacts(self) -> dict[int, list[int]]:
        """person → the reporters with whom they had an eligible close contact."""
        r = self.result
        has_app = r.city.has_app
        reporters = set(self.report_time)
        should: dict[int, list[int]] = {}
        for day, a, b in zip(
            r.close_day.tolist(), r.close_a.tolist(), r.close_b.tolist(), strict=True
        ):
            for person, other in ((a, b), (b, a)):
                if other in reporters and has_app[person] and self.eligible(person, other, day):
                    should.setdefault(person, []).append(other)
        return should


def compute_metrics(result: SimResult) -> Metrics:
    """All metrics of a finished run (see the module docstring for definitions)."""
    truth = _Truth(result)
    should = truth.contacts()
    notified = set(result.notified_at)
    met_reporter = _met_reporters(result)
    tp = len(notified & set(should))
    fp_people = notified - set(should)
    confusion = Confusion(
        true_positives=tp,
        false_positives=len(fp_people),
        false_negatives=len(set(should) - notified),
        near_miss_false_positives=len(fp_people & met_reporter),
    )
    delays = []
    for person in sorted(notified & set(should)):
        t = result.notified_at[person]
        times = [truth.result_time[r] for r in should[person] if truth.report_time[r] <= t]
        if times:
            delays.append((t - min(times)) / 3600.0)
    return Metrics(
        confusion=confusion,
        should_notify=sorted(should),
        notified=sorted(notified),
        tradeoff=_tradeoff(result, truth, set(should)),
        delays_h=delays,
        bytes_per_device_day=_bytes(result),
        bytes_by_day_mean=_bytes_by_day(result),
        daily=_daily(result),
        cross_city=cross_city_metrics(result, truth, should),
    )


def cross_city_metrics(
    result: SimResult, truth: _Truth, should: dict[int, list[int]]
) -> dict[str, Any]:
    """Two cities: how well people exposed in the other city were notified.

    *Should* (cross-city): the person had an eligible close contact (as above, with the
    keys' arrival through the federation) with a reporter of the other city. *Notified*
    (cross-city): the person was notified and their device's kept matches include a key
    of a reporter of the other city. Precision and recall as above over these two sets;
    the delays are hours from the reporter's test result to the notification, for
    people notified through a key of their own city and of the other.
    """
    home = result.home_city
    if home is None:
        return {}
    should_cross = {
        p for p, reporters in should.items() if any(home[r] != home[p] for r in reporters)
    }
    notified_cross = {
        p for p, cities in result.matched_cities.items() if any(c != home[p] for c in cities)
    }
    tp = len(notified_cross & should_cross)
    confusion = Confusion(
        tp, len(notified_cross - should_cross), len(should_cross - notified_cross), 0
    )
    delays: dict[str, list[float]] = {"same_city": [], "other_city": []}
    for person in sorted(set(result.notified_at) & set(should)):
        t = result.notified_at[person]
        for kind, reporters in (
            ("same_city", [r for r in should[person] if home[r] == home[person]]),
            ("other_city", [r for r in should[person] if home[r] != home[person]]),
        ):
            times = [truth.result_time[r] for r in reporters if truth.report_time[r] <= t]
            if times:
                delays[kind].append((t - min(times)) / 3600.0)
    same, other = _describe(delays["same_city"]), _describe(delays["other_city"])
    added = None
    if same["median"] is not None and other["median"] is not None:
        added = float(other["median"]) - float(same["median"])
    return {
        "commuters": result.commuters,
        "should_notify": len(should_cross),
        "notified": len(notified_cross),
        "true_positives": tp,
        "false_positives": confusion.false_positives,
        "false_negatives": confusion.false_negatives,
        "precision": confusion.precision,
        "recall": confusion.recall,
        "test_to_notification_hours_same_city": same,
        "test_to_notification_hours_other_city": other,
        "federation_adds_hours_median": added,
        "federation": result.federation,
    }


def _met_reporters(result: SimResult) -> set[int]:
    """App users whose devices heard any reporter at all (from what they stored)."""
    table = ExposureTable()
    table.add(result.published)
    return {p for p, s in result.stored_sightings.items() if s and table.match(s)}


def _tradeoff(result: SimResult, truth: _Truth, should: set[int]) -> list[TradeoffPoint]:
    table = ExposureTable()
    table.add(result.published)
    scan_min = result.config.scan_period_s / 60.0
    # person → list of (day, attenuation) of eligible matched sightings
    per_person: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for person, stored in result.stored_sightings.items():
        matched = []
        for m in table.match(stored):
            day = int((m.unix_time - SIM_EPOCH) // DAY_S)
            available = truth.available(m.reporter, day, person)
            check = None if available is None else truth.first_check_after(person, available)
            if check is not None and m.unix_time < check:
                matched.append(m)
        if matched:
            per_person[person] = (
                np.array([int((m.unix_time - SIM_EPOCH) // DAY_S) for m in matched]),
                np.array([m.attenuation_db for m in matched]),
            )
    need = result.config.risk.minimum_minutes
    points = []
    for threshold in range(40, 91, 2):
        notified = set()
        for person, (days, att) in per_person.items():
            close = days[att <= threshold]
            if len(close) and np.bincount(close - close.min()).max() * scan_min >= need:
                notified.add(person)
        c = Confusion(len(notified & should), len(notified - should), len(should - notified), 0)
        points.append(TradeoffPoint(threshold, c.precision, c.recall, len(notified)))
    return points


def _bytes(result: SimResult) -> dict[str, float]:
    values = np.array([v for days in result.bytes_by_day.values() for v in days], dtype=float)
    if not len(values):
        return {"mean": 0.0, "median": 0.0, "max": 0.0}
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "max": float(values.max()),
    }


def _bytes_by_day(result: SimResult) -> list[float]:
    if not result.bytes_by_day:
        return [0.0] * result.config.days
    m = np.array(list(result.bytes_by_day.values()), dtype=float)
    return [float(x) for x in m.mean(axis=0)]


def _daily(result: SimResult) -> dict[str, list[int]]:
    d = result.config.days
    inf = result.infected_day
    new = [int((inf == day).sum()) for day in range(d)]
    notified = np.zeros(d, dtype=np.int64)
    for t in result.notified_at.values():
        notified[int((t - SIM_EPOCH) // DAY_S)] += 1
    reports = np.zeros(d, dtype=np.int64)
    for r in result.reports:
        reports[min(d - 1, int(r.time_s // DAY_S))] += 1
    return {
        "new_infections": new,
        "infected_cumulative": [s.infected for s in result.days],
        "positives_cumulative": [s.positives for s in result.days],
        "reports": [int(x) for x in reports],
        "notifications": [int(x) for x in notified],
    }
