"""The key server's differentially private count of real keys per UTC day (SPEC AGG-38).

After a UTC day ends, the export run (:func:`phe_trace.server.run_export`) counts the keys
published here that day — real keys only: padding lives in export files and their own
table, never among the stored keys, and keys imported from other servers are left out —,
adds discrete-Laplace noise (:func:`phe_trace.analytics.dp_key_count`, sensitivity 14 keys
per upload, ε 0.5) and stores the noisy value once per day (the day is the primary key,
so a second run or a second replica releases nothing again). The true count is never
stored. Days are released from the day after the last release (at first: the day the
first health authority was registered or the first key stored) up to yesterday, never
further back than 14 days (older keys are gone). ``GET /v1/statistics/key-counts``
serves the releases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from phe_trace.analytics.dp import (
    DEFAULT_KEY_COUNT_EPSILON,
    MAX_KEYS_PER_UPLOAD,
    dp_key_count,
    interval_halfwidth,
    noise_std,
)

from .storage import statistics_queries as queries

if TYPE_CHECKING:
    from .context import ServerContext

__all__ = ["KeyCountRelease", "release_key_counts", "released_key_counts"]

_DAY = 86_400
#: Days back a release may reach (the keys' retention).
_DAYS_BACK = 14


@dataclass(frozen=True, slots=True)
class KeyCountRelease:
    """One day's released count, with what a reader needs to weigh it."""

    day: int
    value: int
    epsilon: float
    sensitivity: int

    def to_json(self) -> dict[str, Any]:
        import datetime as dt

        h = interval_halfwidth(self.epsilon, self.sensitivity, draws=1)
        return {
            "day": self.day,
            "date": dt.date.fromordinal(self.day + 719_163).isoformat(),
            "value": self.value,
            "epsilon": self.epsilon,
            "sensitivity": self.sensitivity,
            "noise_std": round(noise_std(self.epsilon, self.sensitivity, draws=1), 2),
            "interval_95": [max(0, self.value - h), self.value + h],
        }


def _days_to_release(conn: Connection, today: int) -> range:
    last = queries.last_released_day(conn)
    if last is not None:
        first = last + 1
    else:
        known = queries.first_activity(conn)
        if not known:
            return range(0)
        first = min(known) // _DAY
    return range(max(first, today - _DAYS_BACK), today)


def release_key_counts(
    ctx: ServerContext,
    now: float,
    *,
    epsilon: float = DEFAULT_KEY_COUNT_EPSILON,
    sensitivity: int = MAX_KEYS_PER_UPLOAD,
) -> list[KeyCountRelease]:
    """Release every ended day not released yet (see the module docstring)."""
    today = int(now) // _DAY
    out = []
    with ctx.engine.connect() as conn:
        days = _days_to_release(conn, today)
    for day in days:
        with ctx.engine.connect() as conn:
            true = queries.count_local_keys_created(conn, day * _DAY, (day + 1) * _DAY)
        release = KeyCountRelease(
            day, dp_key_count(int(true), epsilon, sensitivity), epsilon, sensitivity
        )
        try:
            with ctx.engine.begin() as conn:
                queries.insert_key_count(
                    conn,
                    day=day,
                    value=release.value,
                    epsilon=epsilon,
                    sensitivity=sensitivity,
                    released_at=int(now),
                )
        except IntegrityError:  # another run released the day first: its value stands
            continue
        out.append(release)
    return out


def released_key_counts(ctx: ServerContext) -> list[KeyCountRelease]:
    """Every stored release, oldest day first."""
    with ctx.engine.connect() as conn:
        return [KeyCountRelease(d, v, e, s) for d, v, e, s in queries.key_counts(conn)]
