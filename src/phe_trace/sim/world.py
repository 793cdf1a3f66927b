"""The synthetic city: people, households, workplaces, schools, transit, shops.

Everything here is drawn from one ``numpy`` generator seeded by ``--seed``, so a city and
its days are reproducible. The model is deliberately simple and said out loud:

- households of 1–5 people (adults, their children, some seniors living alone or in pairs);
- adults mostly work (workplaces of lognormal size, split into teams of 3–6 who sit
  together), children go to school in classes of about 20 seated in rows;
- some workers commute by public transport (lines, vehicles by departure time);
- anyone may visit a shop, and everyone has a few random encounters a day.

Contacts are produced by :mod:`phe_trace.sim.encounters`, one day at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["CHILD", "SENIOR", "WORKING_AGE", "City", "build_city"]

#: Age groups.
CHILD, WORKING_AGE, SENIOR = 0, 1, 2

_HOUSEHOLD_SIZES = np.array([1, 2, 3, 4, 5])
_HOUSEHOLD_WEIGHTS = np.array([0.28, 0.34, 0.15, 0.15, 0.08])
#: Share of working-age adults who have a workplace they go to.
_EMPLOYED = 0.8
#: Share of workers who commute by public transport.
_TRANSIT = 0.4
#: Target class size in schools.
_CLASS_SIZE = 20
#: People per transit line and per shop.
_PEOPLE_PER_LINE = 150
_PEOPLE_PER_SHOP = 80

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class City:
    """The static structure of the city; arrays are indexed by person (0..n-1)."""

    n: int
    age_group: IntArray
    household: IntArray
    workplace: IntArray  # -1 when none
    team: IntArray  # global team id, -1 when none
    school_class: IntArray  # -1 when none
    seat: IntArray  # seat index within the class, -1 when none
    transit_line: IntArray  # -1 when not commuting by transit
    commute_slot_offset: IntArray  # minutes after 07:00 the commute starts
    has_app: NDArray[np.bool_]
    #: Per-device calibration errors (dB) of the transmitter and the receiver.
    tx_error_db: FloatArray
    rx_error_db: FloatArray
    #: The TX power each device advertises in its metadata (dBm, device model dependent).
    tx_power_dbm: IntArray
    n_shops: int

    @property
    def households(self) -> int:
        return int(self.household.max()) + 1

    @property
    def app_users(self) -> int:
        return int(self.has_app.sum())


def build_city(n: int, uptake: float, rng: np.random.Generator) -> City:
    """Draw a city of ``n`` people; ``uptake`` is the share who run the app."""
    household, age = _households(n, rng)
    workplace, team = _workplaces(age, rng)
    school_class, seat = _schools(age, rng)
    commuter = (workplace >= 0) & (rng.random(n) < _TRANSIT)
    n_lines = max(1, n // _PEOPLE_PER_LINE)
    transit_line = np.where(commuter, rng.integers(0, n_lines, n), -1)
    commute_offset = rng.integers(0, 12, n) * 10  # 07:00 .. 08:50 in 10-minute steps
    has_app = rng.random(n) < uptake
    models = np.array([-4, -8, -12, -16])  # a few phone models' advertised TX power
    return City(
        n=n,
        age_group=age,
        household=household,
        workplace=workplace,
        team=team,
        school_class=school_class,
        seat=seat,
        transit_line=transit_line,
        commute_slot_offset=commute_offset,
        has_app=has_app,
        tx_error_db=rng.normal(0.0, 2.5, n),
        rx_error_db=rng.normal(0.0, 2.5, n),
        tx_power_dbm=models[rng.integers(0, len(models), n)],
        n_shops=max(1, n // _PEOPLE_PER_SHOP),
    )


def _households(n: int, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    """Household ids and age groups: 1–2 adults (or seniors) first, then children."""
    sizes = rng.choice(_HOUSEHOLD_SIZES, size=n, p=_HOUSEHOLD_WEIGHTS)
    sizes = sizes[np.cumsum(sizes) <= n]
    rest = n - int(sizes.sum())
    if rest:
        sizes = np.append(sizes, rest)
    household = np.repeat(np.arange(len(sizes)), sizes)
    position = np.arange(n) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    size_of = np.repeat(sizes, sizes)
    age = np.full(n, WORKING_AGE, dtype=np.int64)
    age[position >= 2] = CHILD
    small = (size_of <= 2) & (rng.random(len(sizes))[household] < 0.35)
    age[small] = SENIOR
    return household.astype(np.int64), age


def _groups(members: IntArray, sizes: IntArray, n: int) -> IntArray:
    """Assign ``members`` (shuffled) consecutively to groups of the given sizes."""
    group = np.full(n, -1, dtype=np.int64)
    bounds = np.cumsum(sizes)
    ids = np.searchsorted(bounds, np.arange(len(members)), side="right")
    group[members] = ids
    return group


def _workplaces(age: IntArray, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    n = len(age)
    workers = np.flatnonzero((age == WORKING_AGE) & (rng.random(n) < _EMPLOYED))
    rng.shuffle(workers)
    if len(workers) == 0:
        return np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64)
    place_sizes = np.maximum(2, rng.lognormal(np.log(12), 0.8, len(workers)).astype(np.int64))
    workplace = _groups(workers, place_sizes, n)
    # Teams: consecutive workers of one workplace, 3–6 at a time.
    team_sizes = rng.integers(3, 7, len(workers))
    team = _groups(workers, team_sizes, n)
    # A team never spans two workplaces: split on workplace changes.
    order = workers
    combined = workplace[order] * (len(workers) + 1) + team[order]
    _, team_ids = np.unique(combined, return_inverse=True)
    team[order] = team_ids
    return workplace, team


def _schools(age: IntArray, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    n = len(age)
    children = np.flatnonzero(age == CHILD)
    rng.shuffle(children)
    n_classes = max(1, round(len(children) / _CLASS_SIZE))
    school_class = np.full(n, -1, dtype=np.int64)
    seat = np.full(n, -1, dtype=np.int64)
    if len(children):
        cls = np.arange(len(children)) % n_classes
        school_class[children] = cls
        counts = np.zeros(n_classes, dtype=np.int64)
        for i, c in enumerate(cls):
            seat[children[i]] = counts[c]
            counts[c] += 1
    return school_class, seat
