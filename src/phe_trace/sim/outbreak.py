"""The outbreak: infection along close encounters, symptoms, tests with delays, reports.

A per-person SEIR course with days as the unit:

- infected on day *i*; infectious from *i + latent* (2–4 days) for 7 days, most
  infectious in the first days (pre-symptomatic transmission is real);
- 65 % develop symptoms two to three days into the infectious period;
- per scan instance with an infectious person, a susceptible one is infected with
  hazard ``β · infectiousness(day) · exp(−d / 1.5 m)``;
- symptomatic people get tested (70 %) 0–2 days after onset; people the app notified get
  tested (60 %) the day after; results come 1–2 days later; a positive app user reports
  with probability ``report_rate`` a few hours after the result;
- people who tested positive isolate: from the result on, they only meet their household.

Simplifications, said out loud: no age structure in susceptibility, no re-infection, no
false-positive tests, test sensitivity 90 % while infectious (50 % in the day before).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .encounters import DayContacts
from .world import City, FloatArray, IntArray

__all__ = ["DAY_S", "Outbreak", "Report", "TestResult"]

DAY_S = 86_400
_NEVER = -10_000
_BETA = 0.015
_INFECTIOUSNESS = np.array([1.0, 1.0, 0.9, 0.7, 0.5, 0.3, 0.15])
_P_SYMPTOMATIC = 0.65
_P_TEST_SYMPTOMATIC = 0.7
_P_TEST_NOTIFIED = 0.6
_SENSITIVITY = 0.9


@dataclass(frozen=True, slots=True)
class TestResult:
    """A test result reaching a person at ``time_s`` (seconds since the epoch of day 0)."""

    person: int
    time_s: float
    positive: bool
    test_day: int = 0


@dataclass(frozen=True, slots=True)
class Report:
    """A positive app user entering their verification code at ``time_s``."""

    person: int
    time_s: float
    result_time_s: float
    test_day: int = 0
    #: Day symptoms began, ``None`` for people without symptoms.
    onset_day: int | None = None


@dataclass
class Outbreak:
    """The epidemic state of every person; all days are simulation day numbers."""

    city: City
    report_rate: float
    rng: np.random.Generator
    infected_day: IntArray = field(init=False)
    infectious_from: IntArray = field(init=False)
    symptomatic: np.ndarray = field(init=False)
    onset_day: IntArray = field(init=False)
    isolated_from: IntArray = field(init=False)
    tested: np.ndarray = field(init=False)
    reported: np.ndarray = field(init=False)
    _tests: dict[int, list[tuple[int, float]]] = field(init=False)
    _results: list[TestResult] = field(init=False)

    def __post_init__(self) -> None:
        n = self.city.n
        self.infected_day = np.full(n, _NEVER, dtype=np.int64)
        self.infectious_from = np.full(n, _NEVER, dtype=np.int64)
        self.symptomatic = np.zeros(n, dtype=bool)
        self.onset_day = np.full(n, _NEVER, dtype=np.int64)
        self.isolated_from = np.full(n, 1 << 30, dtype=np.int64)
        self.tested = np.zeros(n, dtype=bool)
        self.reported = np.zeros(n, dtype=bool)
        self._tests = {}
        self._results = []

    # -- infection ------------------------------------------------------------------

    def seed(self, count: int) -> None:
        """Infect ``count`` people before day 0, at staggered stages of their course."""
        people = self.rng.choice(self.city.n, size=min(count, self.city.n), replace=False)
        self._infect(people, self.rng.integers(-7, -1, len(people)))

    def _infect(self, people: IntArray, day: IntArray | int) -> None:
        k = len(people)
        self.infected_day[people] = day
        self.infectious_from[people] = self.infected_day[people] + self.rng.integers(2, 5, k)
        sym = self.rng.random(k) < _P_SYMPTOMATIC
        self.symptomatic[people] = sym
        self.onset_day[people] = np.where(
            sym, self.infectious_from[people] + self.rng.integers(2, 4, k), _NEVER
        )
        self._schedule_symptomatic_tests(people[sym])

    def infectiousness(self, day: int) -> FloatArray:
        """Relative infectiousness of every person on ``day`` (0 when not infectious)."""
        since = day - self.infectious_from
        out = np.zeros(self.city.n)
        active = (since >= 0) & (since < len(_INFECTIOUSNESS))
        out[active] = _INFECTIOUSNESS[since[active]]
        return out

    def is_infected(self, day: int) -> np.ndarray:
        """Whether each person has been infected by (and including) ``day``."""
        return (self.infected_day > _NEVER) & (self.infected_day <= day)

    def filter_isolated(self, contacts: DayContacts, day: int) -> DayContacts:
        """Drop encounters of isolated people, except with their own household."""
        iso = self.isolated_from <= day
        if not iso.any():
            return contacts
        hh = self.city.household
        keep = ~(iso[contacts.a] | iso[contacts.b]) | (hh[contacts.a] == hh[contacts.b])
        return DayContacts(
            contacts.a[keep],
            contacts.b[keep],
            contacts.slot[keep],
            contacts.distance_m[keep],
            contacts.scan_period_s,
        )

    def transmit(self, day: int, contacts: DayContacts) -> int:
        """Infect susceptible people over ``day``'s encounters; returns how many."""
        inf = self.infectiousness(day)
        susceptible = self.infected_day == _NEVER
        w = np.exp(-contacts.distance_m / 1.5) * _BETA
        hazard = np.zeros(self.city.n)
        for src, dst in ((contacts.a, contacts.b), (contacts.b, contacts.a)):
            live = (inf[src] > 0) & susceptible[dst]
            np.add.at(hazard, dst[live], inf[src[live]] * w[live])
        p = 1.0 - np.exp(-hazard)
        new = np.flatnonzero(self.rng.random(self.city.n) < p)
        if len(new):
            self._infect(new, day)
        return len(new)

    # -- testing and reporting ----------------------------------------------------------

    def _schedule_symptomatic_tests(self, people: IntArray) -> None:
        go = self.rng.random(len(people)) < _P_TEST_SYMPTOMATIC
        delay = self.rng.integers(0, 3, len(people))
        for person, day in zip(people[go], (self.onset_day[people] + delay)[go], strict=True):
            self._tests.setdefault(max(0, int(day)), []).append((int(person), 0.0))

    def notified(self, person: int, day: int) -> None:
        """The app notified ``person`` on ``day``: they may get a test the next day."""
        if self.rng.random() < _P_TEST_NOTIFIED:
            self._tests.setdefault(day + 1, []).append((person, 0.0))

    def tests_of_day(self, day: int) -> list[TestResult]:
        """Take the tests of ``day``; return their results (which arrive 1–2 days later)."""
        results = []
        for person, _ in self._tests.pop(day, []):
            if self.tested[person] and self.isolated_from[person] <= day:
                continue  # already known positive
            since = day - self.infectious_from[person]
            infected = self.infected_day[person] <= day
            if infected and -1 <= since < 10:
                sensitivity = _SENSITIVITY if since >= 0 else 0.5
                positive = bool(self.rng.random() < sensitivity)
            else:
                positive = False
            result_day = day + int(self.rng.integers(1, 3))
            time_s = result_day * DAY_S + float(self.rng.uniform(9, 17)) * 3600
            results.append(TestResult(person, time_s, positive, day))
        self._results.extend(results)
        return results

    def results_due(self, day: int) -> list[TestResult]:
        """Results that reach people on ``day``; positives isolate from that day on."""
        lo, hi = day * DAY_S, (day + 1) * DAY_S
        due = [r for r in self._results if lo <= r.time_s < hi]
        for r in due:
            if r.positive:
                self.tested[r.person] = True
                self.isolated_from[r.person] = min(int(self.isolated_from[r.person]), day + 1)
        return due

    def reports_of(self, results: list[TestResult]) -> list[Report]:
        """Which positive results become reports through the app, and when."""
        reports = []
        for r in results:
            if not r.positive or self.reported[r.person] or not self.city.has_app[r.person]:
                continue
            if self.rng.random() >= self.report_rate:
                continue
            self.reported[r.person] = True
            day_end = (r.time_s // DAY_S) * DAY_S + 22 * 3600
            onset = int(self.onset_day[r.person]) if self.symptomatic[r.person] else None
            time_s = min(r.time_s + float(self.rng.uniform(0, 4)) * 3600, day_end)
            reports.append(Report(r.person, time_s, r.time_s, r.test_day, onset))
        return reports
