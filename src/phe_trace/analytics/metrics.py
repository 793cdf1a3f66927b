"""The daily metrics a device reports, and how each is encoded for Prio3 (SPEC AGG-10).

=======================  ===============  ==============================================
metric                   VDAF             measurement
=======================  ===============  ==============================================
``notified``             Prio3Count       1 if the device showed an exposure notification
                                          that day, else 0
``risk_level``           Prio3Histogram   bucket 0 = no scored exposure that day; buckets
                         (8, chunk 3)     1…7 = the day's highest risk level (1 = lowest)
``days_to_notification`` Prio3Histogram   days from the (latest) exposure to the
                         (15, chunk 4)    notification, 0…13; bucket 14 = not notified
``reported_positive``    Prio3Count       1 if the user published keys that day, else 0
=======================  ===============  ==============================================

Every device sends every metric every day (zeros included): what a device sends is the
same shape whatever happened, and the count of reports per day is the number of
participating devices, not of exposed ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import EncodingError
from .prio3 import Prio3, prio3_count, prio3_histogram

__all__ = [
    "DAYS_BUCKETS",
    "METRICS",
    "RISK_BUCKETS",
    "DailyObservation",
    "Metric",
    "context_for",
    "encode_daily",
]

#: Buckets of the risk-level histogram.
RISK_BUCKETS = 8
#: Buckets of the exposure-to-notification histogram (14 = not notified).
DAYS_BUCKETS = 15


@dataclass(frozen=True)
class Metric:
    """A reported metric: its name, its wire id and its Prio3 instantiation."""

    name: str
    metric_id: int
    length: int
    make: Callable[[], Prio3[Any, Any]]

    def vdaf(self) -> Prio3[Any, Any]:
        """The metric's Prio3 instance (built once: it holds only fixed parameters)."""
        vdaf = _VDAFS.get(self.make)
        if vdaf is None:
            vdaf = _VDAFS[self.make] = self.make()
        return vdaf


#: Built instances by constructor (read only: callers never modify an instance).
_VDAFS: dict[Callable[[], Prio3[Any, Any]], Prio3[Any, Any]] = {}


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("notified", 1, 1, prio3_count),
        Metric("risk_level", 2, RISK_BUCKETS, lambda: prio3_histogram(RISK_BUCKETS, 3)),
        Metric("days_to_notification", 3, DAYS_BUCKETS, lambda: prio3_histogram(DAYS_BUCKETS, 4)),
        Metric("reported_positive", 4, 1, prio3_count),
    )
}


def context_for(metric: str, day: int) -> bytes:
    """The VDAF application context: binds every proof to its metric and day."""
    return f"phe-trace/analytics/v1/{metric}/{day}".encode()


@dataclass(frozen=True)
class DailyObservation:
    """What the device observed on one day (nothing here leaves the device in clear)."""

    notified: bool
    max_risk_level: int | None
    days_exposure_to_notification: int | None
    reported_positive: bool


def encode_daily(obs: DailyObservation) -> dict[str, int]:
    """The measurement of each metric for one day of one device."""
    risk = obs.max_risk_level or 0
    if not 0 <= risk < RISK_BUCKETS:
        raise EncodingError(f"risk level must be in [0, {RISK_BUCKETS})")
    if obs.notified:
        days = obs.days_exposure_to_notification
        if days is None or not 0 <= days < DAYS_BUCKETS - 1:
            raise EncodingError("a notification needs 0 … 13 days since exposure")
    else:
        days = DAYS_BUCKETS - 1
    return {
        "notified": int(obs.notified),
        "risk_level": risk,
        "days_to_notification": days,
        "reported_positive": int(obs.reported_positive),
    }
