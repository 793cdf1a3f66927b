"""Two neighbouring cities and the commuters between them (``phe-trace demo --cities 2``).

Each city is drawn as in :mod:`phe_trace.sim.world` from the one seeded generator, with
``people`` people each; people ``0..n-1`` live in city 0, ``n..2n-1`` in city 1. Each
city's day of encounters is drawn on its own (:func:`~phe_trace.sim.encounters.day_contacts`),
so nobody meets the other city's people at home, school, in shops or at random.
*Commuters* are the exception: a share of each city's workers (``commuter_share``) also
work, on weekdays, with a team of the other city (the host team: drawn once), close as a
team sits (09:00–10:00 start, 60–300 minutes, about 1.8 m apart). Those are the only
contacts between the cities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .encounters import DayContacts, _Episodes, _expand, _uniform, day_contacts
from .world import City, IntArray, build_city

__all__ = ["TwinCities", "build_twin_cities"]

_GROUPS = ("household", "workplace", "team", "school_class", "transit_line")
_PLAIN = ("age_group", "seat", "commute_slot_offset", "has_app", "tx_error_db", "rx_error_db")


def _merge(cities: list[City]) -> City:
    """One population of all ``cities``; group ids of each city offset past the previous."""
    fields: dict[str, object] = {}
    for name in _GROUPS:
        parts, offset = [], 0
        for city in cities:
            values = getattr(city, name)
            parts.append(np.where(values >= 0, values + offset, -1))
            offset += int(values.max()) + 1 if (values >= 0).any() else 0
        fields[name] = np.concatenate(parts)
    for name in (*_PLAIN, "tx_power_dbm"):
        fields[name] = np.concatenate([getattr(c, name) for c in cities])
    return City(
        n=sum(c.n for c in cities),
        n_shops=sum(c.n_shops for c in cities),
        **fields,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class TwinCities:
    """The two cities, the whole population, and who commutes where."""

    cities: tuple[City, City]
    merged: City
    #: Home city (0 or 1) of every person.
    home: IntArray
    #: Commuter–host-team member pairs (a commuter, b of the other city).
    commute_a: IntArray
    commute_b: IntArray

    @property
    def commuters(self) -> int:
        return len(np.unique(self.commute_a))

    def day_contacts(self, day: int, scan_period_s: int, rng: np.random.Generator) -> DayContacts:
        """Every scan instance of ``day``: each city's own, then the commuters' at work."""
        parts = []
        offset = 0
        for city in self.cities:
            c = day_contacts(city, day, scan_period_s, rng)
            parts.append((c.a + offset, c.b + offset, c.slot, c.distance_m))
            offset += city.n
        if day % 7 < 5 and len(self.commute_a):
            eps = _Episodes()
            k = len(self.commute_a)
            start = 9 * 60 + _uniform(rng, 0, 60, k)
            eps.add(self.commute_a, self.commute_b, start, _uniform(rng, 60, 300, k), 1.8)
            c = _expand(eps, scan_period_s, rng)
            parts.append((c.a, c.b, c.slot, c.distance_m))
        a, b, slot, dist = (np.concatenate(x) for x in zip(*parts, strict=True))
        order = np.argsort(slot, kind="stable")
        return DayContacts(a[order], b[order], slot[order], dist[order], scan_period_s)


def build_twin_cities(
    people: int, uptake: float, commuter_share: float, rng: np.random.Generator
) -> TwinCities:
    """Two cities of ``people`` each; ``commuter_share`` of each one's workers commute."""
    cities = (build_city(people, uptake, rng), build_city(people, uptake, rng))
    merged = _merge(list(cities))
    home = np.repeat(np.arange(2), [c.n for c in cities]).astype(np.int64)
    a_parts, b_parts = [], []
    offsets = (0, cities[0].n)
    for side in (0, 1):
        city, other = cities[side], cities[1 - side]
        workers = np.flatnonzero(city.workplace >= 0)
        commuters = workers[rng.random(len(workers)) < commuter_share]
        teams = np.unique(other.team[other.team >= 0])
        if not len(commuters) or not len(teams):
            continue
        host = rng.choice(teams, len(commuters))
        for person, team in zip(commuters.tolist(), host.tolist(), strict=True):
            members = np.flatnonzero(other.team == team) + offsets[1 - side]
            a_parts.append(np.full(len(members), person + offsets[side], dtype=np.int64))
            b_parts.append(members.astype(np.int64))
    empty = np.zeros(0, dtype=np.int64)
    commute_a = np.concatenate(a_parts) if a_parts else empty
    commute_b = np.concatenate(b_parts) if b_parts else empty
    return TwinCities(cities, merged, home, commute_a, commute_b)
