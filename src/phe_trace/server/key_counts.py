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

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from phe_trace.analytics.dp import (
    DEFAULT_KEY_COUNT_EPSILON,
    MAX_KEYS_PER_UPLOAD,
    dp_key_count,
    interval_halfwidth,
    noise_std,
)

from .storage.federation_tables import federated_keys
from .storage.tables import exposures, health_authorities, key_count_releases

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


def _days_to_release(conn: sa.Connection, today: int) -> range:
    last = conn.execute(sa.select(sa.func.max(key_count_releases.c.day))).scalar()
    if last is not None:
        first = int(last) + 1
    else:
        starts = [
            conn.execute(sa.select(sa.func.min(column))).scalar()
            for column in (exposures.c.created_at, health_authorities.c.created_at)
        ]
        known = [int(t) for t in starts if t is not None]
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
            true = conn.execute(
                sa.select(sa.func.count())
                .select_from(exposures)
                .outerjoin(federated_keys, federated_keys.c.key_data == exposures.c.key_data)
                .where(
                    exposures.c.created_at >= day * _DAY,
                    exposures.c.created_at < (day + 1) * _DAY,
                    federated_keys.c.key_data.is_(None),
                )
            ).scalar_one()
        release = KeyCountRelease(
            day, dp_key_count(int(true), epsilon, sensitivity), epsilon, sensitivity
        )
        try:
            with ctx.engine.begin() as conn:
                conn.execute(
                    key_count_releases.insert().values(
                        day=day,
                        value=release.value,
                        epsilon=epsilon,
                        sensitivity=sensitivity,
                        released_at=int(now),
                    )
                )
        except IntegrityError:  # another run released the day first: its value stands
            continue
        out.append(release)
    return out


def released_key_counts(ctx: ServerContext) -> list[KeyCountRelease]:
    """Every stored release, oldest day first."""
    query = sa.select(
        key_count_releases.c.day,
        key_count_releases.c.value,
        key_count_releases.c.epsilon,
        key_count_releases.c.sensitivity,
    ).order_by(key_count_releases.c.day)
    with ctx.engine.connect() as conn:
        return [
            KeyCountRelease(int(d), int(v), float(e), int(s)) for d, v, e, s in conn.execute(query)
        ]
