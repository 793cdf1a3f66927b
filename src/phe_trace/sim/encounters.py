"""Who is near whom, scan by scan: one simulated day of encounters, vectorized.

A day is cut into scan slots (``scan_period_s``, 5 minutes by default: GAEN devices scan
at least that often). An *episode* is two people near each other from a start slot for a
number of slots, at a typical distance; each slot of an episode becomes one *scan
instance* ``(a, b, slot, distance_m)`` with its own jittered distance (people move).
Both devices of a scan instance hear each other once.

Simplifications, said out loud: distances are drawn, not derived from floor plans; an
episode's distance wobbles around its typical value independently per scan; people are
only near the people of their own settings (home, team, class, vehicle, shop) plus a few
random encounters a day.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .world import City, FloatArray, IntArray

__all__ = ["CLOSE_CONTACT_M", "CLOSE_CONTACT_MIN", "DayContacts", "day_contacts"]

#: Ground-truth close contact: at least this many minutes in one day …
CLOSE_CONTACT_MIN = 15.0
#: … within this distance (metres).
CLOSE_CONTACT_M = 2.0
_MIN_DISTANCE_M = 0.3
_MAX_DISTANCE_M = 15.0


@dataclass(frozen=True, slots=True)
class DayContacts:
    """All scan instances of one day, sorted by slot; ``a < b``."""

    a: IntArray
    b: IntArray
    slot: IntArray
    distance_m: FloatArray
    scan_period_s: int

    def __len__(self) -> int:
        return len(self.a)

    def close_pairs(self) -> tuple[IntArray, IntArray, FloatArray]:
        """Pairs that were a ground-truth close contact today, with their minutes ≤ 2 m."""
        near = self.distance_m <= CLOSE_CONTACT_M
        if not near.any():
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0)
        n = int(max(self.a.max(), self.b.max())) + 1
        key = self.a[near] * n + self.b[near]
        keys, counts = np.unique(key, return_counts=True)
        minutes = counts * (self.scan_period_s / 60.0)
        close = minutes >= CLOSE_CONTACT_MIN
        return keys[close] // n, keys[close] % n, minutes[close]


class _Episodes:
    """Accumulates episodes as arrays (start and duration in minutes of the day)."""

    def __init__(self) -> None:
        self.parts: list[tuple[IntArray, IntArray, FloatArray, FloatArray, FloatArray]] = []

    def add(
        self, a: IntArray, b: IntArray, start: FloatArray, minutes: FloatArray, median_m: float
    ) -> None:
        keep = a != b
        if keep.any():
            dist = np.full(int(keep.sum()), median_m)
            self.parts.append((a[keep], b[keep], start[keep], minutes[keep], dist))


def day_contacts(city: City, day: int, scan_period_s: int, rng: np.random.Generator) -> DayContacts:
    """Draw every scan instance of simulated ``day`` (day 0 is a Monday)."""
    weekday = day % 7 < 5
    eps = _Episodes()
    _home(city, weekday, eps, rng)
    if weekday:
        _work(city, eps, rng)
        _school(city, eps, rng)
        _transit(city, eps, rng)
    _shops(city, weekday, eps, rng)
    _random(city, eps, rng)
    return _expand(eps, scan_period_s, rng)


def _uniform(rng: np.random.Generator, lo: float, hi: float, k: int) -> FloatArray:
    return rng.uniform(lo, hi, k)


def _all_pairs(group: IntArray) -> tuple[IntArray, IntArray]:
    """Every pair of people sharing a group id (``-1`` means no group)."""
    members = np.flatnonzero(group >= 0)
    order = members[np.argsort(group[members], kind="stable")]
    g = group[order]
    a_parts, b_parts = [], []
    for offset in range(1, 12):
        if offset >= len(order):
            break
        same = g[:-offset] == g[offset:]
        if not same.any():
            break
        a_parts.append(order[:-offset][same])
        b_parts.append(order[offset:][same])
    if not a_parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return np.concatenate(a_parts), np.concatenate(b_parts)


def _random_partners(
    group: IntArray, mean: float, rng: np.random.Generator
) -> tuple[IntArray, IntArray]:
    """Each grouped person meets Poisson(``mean``) random others of their own group."""
    members = np.flatnonzero(group >= 0)
    if len(members) < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    order = members[np.argsort(group[members], kind="stable")]
    g = group[order]
    starts = np.searchsorted(g, g, side="left")
    sizes = np.searchsorted(g, g, side="right") - starts
    k = rng.poisson(mean, len(order))
    k[sizes < 2] = 0
    a = np.repeat(order, k)
    pick = starts.repeat(k) + (rng.random(int(k.sum())) * sizes.repeat(k)).astype(np.int64)
    return a, order[pick]


def _home(city: City, weekday: bool, eps: _Episodes, rng: np.random.Generator) -> None:
    a, b = _all_pairs(city.household)
    k = len(a)
    if weekday:
        eps.add(a, b, 18 * 60 + _uniform(rng, 0, 90, k), _uniform(rng, 90, 210, k), 1.8)
    else:
        eps.add(a, b, 10 * 60 + _uniform(rng, 0, 120, k), _uniform(rng, 240, 480, k), 2.0)


def _work(city: City, eps: _Episodes, rng: np.random.Generator) -> None:
    a, b = _all_pairs(city.team)
    k = len(a)
    eps.add(a, b, 9 * 60 + _uniform(rng, 0, 60, k), _uniform(rng, 30, 240, k), 2.2)
    a, b = _random_partners(city.workplace, 1.0, rng)
    k = len(a)
    eps.add(a, b, _uniform(rng, 10 * 60, 16 * 60, k), _uniform(rng, 5, 40, k), 1.5)


def _school(city: City, eps: _Episodes, rng: np.random.Generator) -> None:
    kids = np.flatnonzero(city.school_class >= 0)
    if len(kids) < 2:
        return
    n_seats = int(city.seat.max()) + 2
    where = np.full((int(city.school_class.max()) + 1, n_seats + 2), -1, dtype=np.int64)
    where[city.school_class[kids], city.seat[kids]] = kids
    for offset, median in ((1, 1.2), (2, 2.4)):
        left = where[:, :-offset].ravel()
        right = where[:, offset:].ravel()
        ok = (left >= 0) & (right >= 0)
        a, b = left[ok], right[ok]
        k = len(a)
        eps.add(a, b, np.full(k, 8 * 60 + 30.0), np.full(k, 240.0), median)
    a, b = _random_partners(city.school_class, 1.5, rng)
    k = len(a)
    eps.add(a, b, rng.choice([10 * 60 + 30.0, 12 * 60.0], k), _uniform(rng, 15, 30, k), 1.5)


def _transit(city: City, eps: _Episodes, rng: np.random.Generator) -> None:
    riders = city.transit_line >= 0
    vehicle = np.where(riders, city.transit_line * 8 + city.commute_slot_offset // 20, -1)
    for base in (7 * 60, 17 * 60):
        a, b = _random_partners(vehicle, 2.0, rng)
        k = len(a)
        start = base + city.commute_slot_offset[a].astype(np.float64)
        eps.add(a, b, start, _uniform(rng, 10, 35, k), 1.2)


def _shops(city: City, weekday: bool, eps: _Episodes, rng: np.random.Generator) -> None:
    share = 0.3 if weekday else 0.5
    visiting = rng.random(city.n) < share
    hour = rng.integers(9, 20, city.n)
    place = np.where(visiting, rng.integers(0, city.n_shops, city.n) * 24 + hour, -1)
    a, b = _random_partners(place, 1.5, rng)
    k = len(a)
    start = (place[a] % 24) * 60 + _uniform(rng, 0, 50, k)
    eps.add(a, b, start, _uniform(rng, 5, 20, k), 2.0)


def _random(city: City, eps: _Episodes, rng: np.random.Generator) -> None:
    k = rng.poisson(0.5, city.n)
    a = np.repeat(np.arange(city.n), k)
    b = rng.integers(0, city.n, len(a))
    eps.add(a, b, _uniform(rng, 8 * 60, 21 * 60, len(a)), _uniform(rng, 5, 30, len(a)), 1.8)


def _expand(eps: _Episodes, scan_period_s: int, rng: np.random.Generator) -> DayContacts:
    """Episodes → scan instances with per-episode and per-scan distance jitter."""
    slots_per_day = 86_400 // scan_period_s
    period_min = scan_period_s / 60.0
    if not eps.parts:
        empty = np.zeros(0, dtype=np.int64)
        return DayContacts(empty, empty, empty, np.zeros(0), scan_period_s)
    a, b, start, minutes, median = (np.concatenate(x) for x in zip(*eps.parts, strict=True))
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    base = median * rng.lognormal(0.0, 0.35, len(a))
    first = np.ceil(start / period_min).astype(np.int64)
    count = np.maximum(1, np.round(minutes / period_min).astype(np.int64))
    total = int(count.sum())
    within = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    slot = np.repeat(first, count) + within
    dist = np.repeat(base, count) * rng.lognormal(0.0, 0.25, total)
    dist = np.clip(dist, _MIN_DISTANCE_M, _MAX_DISTANCE_M)
    a2, b2 = np.repeat(lo, count), np.repeat(hi, count)
    inside = slot < slots_per_day
    a2, b2, slot, dist = a2[inside], b2[inside], slot[inside], dist[inside]
    # One scan instance per pair and slot: overlapping episodes keep the nearest.
    n = int(max(a2.max(), b2.max())) + 1 if len(a2) else 1
    key = (slot * n + a2) * n + b2
    order = np.lexsort((dist, key))
    key, a2, b2, slot, dist = key[order], a2[order], b2[order], slot[order], dist[order]
    first_of = np.ones(len(key), dtype=bool)
    first_of[1:] = key[1:] != key[:-1]
    return DayContacts(a2[first_of], b2[first_of], slot[first_of], dist[first_of], scan_period_s)
