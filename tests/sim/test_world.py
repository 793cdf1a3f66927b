"""The synthetic city and its encounters: structure, reproducibility, ground truth."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from phe_trace.sim.encounters import CLOSE_CONTACT_M, CLOSE_CONTACT_MIN, day_contacts
from phe_trace.sim.world import CHILD, build_city


def _city(n: int = 500, seed: int = 3, uptake: float = 0.5):
    return build_city(n, uptake, np.random.default_rng(seed))


def test_everyone_lives_in_a_household_of_one_to_five() -> None:
    city = _city()
    sizes = np.bincount(city.household)
    assert len(city.household) == city.n
    assert sizes.min() >= 1 and sizes.max() <= 5


def test_children_go_to_school_and_only_adults_work() -> None:
    city = _city()
    kids = city.age_group == CHILD
    assert (city.school_class[kids] >= 0).all()
    assert (city.school_class[~kids] == -1).all()
    assert (city.workplace[kids] == -1).all()
    # a team never spans two workplaces
    teams = defaultdict(set)
    for person in np.flatnonzero(city.team >= 0):
        teams[int(city.team[person])].add(int(city.workplace[person]))
    assert all(len(places) == 1 for places in teams.values())


def test_uptake_is_the_share_of_app_users() -> None:
    city = _city(n=4000, uptake=0.3)
    assert abs(city.has_app.mean() - 0.3) < 0.03


def test_same_seed_same_city_and_day() -> None:
    c1, c2 = _city(seed=9), _city(seed=9)
    assert (c1.household == c2.household).all() and (c1.has_app == c2.has_app).all()
    d1 = day_contacts(c1, 0, 300, np.random.default_rng(5))
    d2 = day_contacts(c2, 0, 300, np.random.default_rng(5))
    assert (d1.a == d2.a).all() and (d1.distance_m == d2.distance_m).all()


def test_scan_instances_are_ordered_unique_and_in_the_day() -> None:
    city = _city()
    day = day_contacts(city, 1, 300, np.random.default_rng(1))
    assert (day.a < day.b).all()
    assert (np.diff(day.slot) >= 0).all()
    assert day.slot.min() >= 0 and day.slot.max() < 288
    keys = set(zip(day.a.tolist(), day.b.tolist(), day.slot.tolist(), strict=True))
    assert len(keys) == len(day)


def test_household_members_meet_every_day() -> None:
    city = _city()
    for d in (0, 5):  # a weekday and a Saturday
        day = day_contacts(city, d, 300, np.random.default_rng(d))
        met = set(zip(day.a.tolist(), day.b.tolist(), strict=True))
        for hh in range(20):
            members = np.flatnonzero(city.household == hh).tolist()
            for i, a in enumerate(members):
                for b in members[i + 1 :]:
                    assert (a, b) in met


def test_close_pairs_match_a_slow_count() -> None:
    """Close contact = at least 15 minutes within 2 m in one day, counted scan by scan."""
    city = _city(n=300)
    day = day_contacts(city, 2, 300, np.random.default_rng(2))
    minutes: dict[tuple[int, int], float] = defaultdict(float)
    for a, b, dist in zip(day.a.tolist(), day.b.tolist(), day.distance_m.tolist(), strict=True):
        if dist <= CLOSE_CONTACT_M:
            minutes[(a, b)] += 5.0
    expected = {pair: m for pair, m in minutes.items() if m >= CLOSE_CONTACT_MIN}
    a, b, m = day.close_pairs()
    got = dict(zip(zip(a.tolist(), b.tolist(), strict=True), m.tolist(), strict=True))
    assert got == expected
    assert expected  # the day has close contacts at all
