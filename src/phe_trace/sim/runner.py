"""The day loop: the world moves, devices hear each other, people report, devices check.

Everything is driven by one simulated clock (unix seconds from :data:`SIM_EPOCH`); no
wall-clock sleeping anywhere. Within a day, events run in time order:

- one *radio step* per 20 minutes (``radio_step_s``) with encounters: the devices involved are
  ticked (the agent rotates its identifier when due and ingests what its radio heard),
  then each heard advertisement of the interval's scans is injected into the listener's
  radio with the RSSI from :mod:`phe_trace.sim.radio`;
- *reports* at the time a positive app user enters their code;
- the *export worker* at :attr:`SimConfig.export_hours`;
- each device's daily *check* (sync, verify, match, score) at its own hour;
- at the end of the day, every app user's device uploads its daily aggregate metrics
  (when the backend runs aggregators: :mod:`phe_trace.sim.aggregates`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from phe_trace.agent.state import Matches
from phe_trace.errors import PheTraceError

from .cities import TwinCities, build_twin_cities
from .config import SIM_EPOCH, SimConfig
from .encounters import DayContacts, day_contacts
from .fleet import Fleet
from .hci import HciBridge, pick_bumble_devices
from .outbreak import DAY_S, Outbreak, Report
from .radio import rssi_dbm
from .reference import ExposureTable, PublishedKey
from .standin import SyncOutcome
from .world import City, IntArray, build_city

__all__ = ["Backend", "DayStats", "SimResult", "Simulation"]

_INTERVAL_S = 600


class Backend(Protocol):
    """The server side the devices talk to (real key server or the stand-in)."""

    real: bool
    description: str

    def report(self, fleet: Fleet, report: Report, now: float) -> int: ...
    def export(self, now: float) -> int: ...
    def sync(self, fleet: Fleet, person: int, now: float) -> SyncOutcome: ...
    def storage(self) -> dict[str, Any]: ...
    def risk_rule(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


@dataclass(slots=True)
class DayStats:
    """Cumulative counters at the end of one simulated day (for the live display)."""

    day: int
    people: int
    app_users: int
    infected: int
    new_infections: int
    tests: int
    positives: int
    reports: int
    keys_published: int
    notified: int
    sightings: int
    wall_s: float


@dataclass
class SimResult:
    """Everything the metrics and the report need, in plain arrays and lists."""

    config: SimConfig
    city: City
    backend: str
    backend_real: bool
    days: list[DayStats] = field(default_factory=list)
    #: Ground-truth close contacts: day, a, b, minutes within 2 m (a < b).
    close_day: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    close_a: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    close_b: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    close_minutes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    infected_day: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    reports: list[Report] = field(default_factory=list)
    report_keys: dict[int, int] = field(default_factory=dict)
    #: Reports the real services refused (each one line; they also count as not reported).
    report_errors: list[str] = field(default_factory=list)
    #: Keys each reporter's agent held when reporting (read from its store; the truth).
    published: list[PublishedKey] = field(default_factory=list)
    export_times: list[float] = field(default_factory=list)
    sync_hour: dict[int, float] = field(default_factory=dict)
    #: First time each person was notified (simulated unix seconds).
    notified_at: dict[int, float] = field(default_factory=dict)
    #: Bytes each device downloaded per day: person → list over days.
    bytes_by_day: dict[int, list[int]] = field(default_factory=dict)
    #: What every device stored of published keys' identifiers, read back from its sealed
    #: store at the end: person → (rpi, aem, time, rssi).
    stored_sightings: dict[int, list[tuple[bytes, bytes, float, int]]] = field(default_factory=dict)
    server_storage: dict[str, Any] = field(default_factory=dict)
    #: ``--radio bumble``: what went through the virtual HCI controllers.
    hci: dict[str, int] = field(default_factory=dict)
    #: What the health authority sees in aggregate (its own services' counts).
    aggregate: dict[str, Any] = field(default_factory=dict)
    #: Per simulated day, what each app user's device measured for the aggregate metrics
    #: (person → observation), the truth behind the released aggregates.
    daily_observations: list[dict[int, Any]] = field(default_factory=list)
    #: The scoring rule the devices' notifications came from (``thresholds_db`` included).
    risk_rule: dict[str, Any] = field(default_factory=dict)
    #: Two cities: each person's home city (``None`` for one city), how many commute.
    home_city: IntArray | None = None
    commuters: int = 0
    #: Two cities: per notified person, the home cities of the reporters whose keys
    #: their device matched (read from its sealed store at the end).
    matched_cities: dict[int, set[int]] = field(default_factory=dict)
    #: Two cities: what the federation did (backend's own counts and delays).
    federation: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0
    tests_total: int = 0
    positives_total: int = 0

    @property
    def end_time(self) -> float:
        return SIM_EPOCH + self.config.days * DAY_S


class Simulation:
    """One run: build the city, step through the days, collect the result."""

    def __init__(
        self,
        config: SimConfig,
        backend_factory: Callable[[SimConfig], Backend],
        progress: Callable[[DayStats], None] | None = None,
    ) -> None:
        config.check()
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        self.twins: TwinCities | None = None
        if config.cities == 2:
            self.twins = build_twin_cities(
                config.people, config.uptake, config.commuter_share, self.rng
            )
            self.city = self.twins.merged
        else:
            self.city = build_city(config.people, config.uptake, self.rng)
        self.outbreak = Outbreak(self.city, config.report_rate, self.rng)
        self.outbreak.seed(config.seeds)
        self._backend_factory = backend_factory
        self._progress = progress
        self._hci: HciBridge | None = None
        #: Today's check of each device, and who published keys today (daily metrics).
        self._checks: dict[int, SyncOutcome] = {}
        self._reported: set[int] = set()

    def run(self) -> SimResult:
        started = time.perf_counter()
        backend = self._backend_factory(self.config)
        fleet: Fleet | None = None
        try:
            fleet = Fleet(
                self.city,
                float(SIM_EPOCH),
                self.config.seed,
                self.config.scan_period_s,
                getattr(backend, "agent_settings", None),
                None if self.twins is None else self.twins.home,
            )
            if self.config.radio == "bumble":
                self._hci = HciBridge(pick_bumble_devices(self.city, self.config.bumble_devices))
            result = SimResult(self.config, self.city, backend.description, backend.real)
            if self.twins is not None:
                result.home_city = self.twins.home
                result.commuters = self.twins.commuters
            result.risk_rule = backend.risk_rule()
            sync_rng = np.random.default_rng(self.config.seed + 1)
            result.sync_hour = {p: float(sync_rng.uniform(6.0, 23.0)) for p in fleet}
            result.bytes_by_day = {p: [0] * self.config.days for p in fleet}
            closes: list[tuple[int, IntArray, IntArray, np.ndarray]] = []
            for day in range(self.config.days):
                self._day(day, fleet, backend, result, closes)
                result.wall_s = time.perf_counter() - started
                result.days[-1].wall_s = result.wall_s
                if self._progress is not None:
                    self._progress(result.days[-1])
            self._finish(result, fleet, backend, closes)
            result.wall_s = time.perf_counter() - started
            return result
        finally:
            if self._hci is not None:
                self._hci.close()
            if fleet is not None:
                fleet.close()
            backend.close()

    # -- one day --------------------------------------------------------------------------

    def _day(
        self,
        day: int,
        fleet: Fleet,
        backend: Backend,
        result: SimResult,
        closes: list[tuple[int, IntArray, IntArray, np.ndarray]],
    ) -> None:
        cfg, ob = self.config, self.outbreak
        if self.twins is None:
            drawn = day_contacts(self.city, day, cfg.scan_period_s, self.rng)
        else:
            drawn = self.twins.day_contacts(day, cfg.scan_period_s, self.rng)
        contacts = ob.filter_isolated(drawn, day)
        a, b, minutes = contacts.close_pairs()
        closes.append((day, a, b, minutes))
        new_infections = ob.transmit(day, contacts)
        tests = ob.tests_of_day(day)
        result.tests_total += len(tests)
        due = ob.results_due(day)
        result.positives_total += sum(1 for r in due if r.positive)
        reports = ob.reports_of(due)
        result.reports.extend(reports)

        day_start = SIM_EPOCH + day * DAY_S
        events: list[tuple[float, int, int]] = []  # time, kind, argument
        radio = self._radio_steps(contacts, day_start)
        events += [(t, 1, i) for i, (t, *_rest) in enumerate(radio)]
        events += [(SIM_EPOCH + r.time_s, 0, i) for i, r in enumerate(reports)]
        events += [(day_start + h * 3600.0, 2, 0) for h in cfg.export_hours]
        events += [(day_start + h * 3600.0, 3, p) for p, h in result.sync_hour.items()]
        federate = getattr(backend, "federate", None)
        if callable(federate):
            events += [(day_start + h * 3600.0, 4, 0) for h in cfg.federation_hours]
        events.sort()
        self._checks.clear()
        self._reported.clear()
        for now, kind, arg in events:
            if kind == 1:
                self._radio_step(fleet, *radio[arg])
            elif kind == 0:
                if self._report(fleet, backend, result, reports[arg], now):
                    self._reported.add(reports[arg].person)
            elif kind == 2:
                if backend.export(now):
                    result.export_times.append(now)
            elif kind == 4:
                assert callable(federate)
                federate(now)
            else:
                self._check(fleet, backend, result, arg, now, day)
        self._daily_metrics(day, fleet, backend, result)
        result.days.append(self._stats(day, new_infections, result, len(contacts)))

    def _radio_steps(
        self, contacts: DayContacts, day_start: float
    ) -> list[tuple[float, IntArray, IntArray, IntArray, IntArray]]:
        """Per radio step: (time, scanners, transmitters, rssi, scan times)."""
        has_app = self.city.has_app
        both = has_app[contacts.a] & has_app[contacts.b]
        a, b, slot = contacts.a[both], contacts.b[both], contacts.slot[both]
        dist = contacts.distance_m[both]
        scanner = np.concatenate([a, b])
        sender = np.concatenate([b, a])
        slot2 = np.concatenate([slot, slot])
        rssi, heard = rssi_dbm(self.city, scanner, sender, np.concatenate([dist, dist]), self.rng)
        scanner, sender, slot2, rssi = scanner[heard], sender[heard], slot2[heard], rssi[heard]
        when = day_start + slot2 * self.config.scan_period_s
        step = self.config.radio_step_s
        bucket = (slot2 * self.config.scan_period_s) // step
        order = np.argsort(bucket, kind="stable")
        bucket, scanner, sender, rssi, when = (
            x[order] for x in (bucket, scanner, sender, rssi, when)
        )
        cuts = np.flatnonzero(np.diff(bucket)) + 1
        steps = []
        for s, r, q, w in zip(
            np.split(scanner, cuts),
            np.split(sender, cuts),
            np.split(rssi, cuts),
            np.split(when, cuts),
            strict=True,
        ):
            if len(s):
                steps.append((float(day_start + (w[0] - day_start) // step * step), s, r, q, w))
        return steps

    def _radio_step(
        self,
        fleet: Fleet,
        now: float,
        scanner: IntArray,
        sender: IntArray,
        rssi: IntArray,
        when: IntArray,
    ) -> None:
        payloads = fleet.advance(np.unique(np.concatenate([scanner, sender])), now)
        hear = fleet.hear
        hci = self._hci
        over_hci: dict[float, list[tuple[int, int, int]]] = {}
        for s, t, q, w in zip(
            scanner.tolist(), sender.tolist(), rssi.tolist(), when.tolist(), strict=True
        ):
            payload = payloads.get(t)
            if payload is None:
                continue
            if hci is not None and s in hci.people and t in hci.people:
                over_hci.setdefault(w, []).append((s, t, q))
            else:
                hear(s, payload, q, w)
        for w, encounters in sorted(over_hci.items()):
            assert hci is not None
            for listener, data, q in hci.deliver(encounters, payloads, w):
                hear(listener, data, q, w)

    @staticmethod
    def _report(
        fleet: Fleet, backend: Backend, result: SimResult, report: Report, now: float
    ) -> bool:
        person = report.person
        try:
            result.report_keys[person] = backend.report(fleet, report, now)
        except PheTraceError as exc:  # one refused report must not end the city
            result.report_errors.append(f"{type(exc).__name__}: {exc}")
            return False
        result.published.extend(
            PublishedKey(k.key_data, k.rolling_start_interval_number, k.rolling_period, person)
            for k in fleet.agents[person].store.teks()
            if k.rolling_start_interval_number * _INTERVAL_S <= now
        )
        return True

    def _check(
        self, fleet: Fleet, backend: Backend, result: SimResult, person: int, now: float, day: int
    ) -> None:
        outcome = backend.sync(fleet, person, now)
        self._checks[person] = outcome
        result.bytes_by_day[person][day] += outcome.bytes_downloaded
        if outcome.notified and person not in result.notified_at:
            result.notified_at[person] = now
            self.outbreak.notified(person, day)

    def _daily_metrics(self, day: int, fleet: Fleet, backend: Backend, result: SimResult) -> None:
        """What each app user's device measured today, uploaded for aggregation."""
        upload = getattr(backend, "daily_analytics", None)
        if not callable(upload):
            return
        from phe_trace.analytics import DailyObservation

        day_start = SIM_EPOCH + day * DAY_S
        observations: dict[int, Any] = {}
        for person in fleet:
            check = self._checks.get(person)
            notified = day_start <= result.notified_at.get(person, -1.0) < day_start + DAY_S
            since = None
            if notified:
                last = check.last_exposure_day if check is not None else None
                since = min(13, max(0, day - (day if last is None else last)))
            observations[person] = DailyObservation(
                notified=notified,
                max_risk_level=check.risk_level if check is not None else 0,
                days_exposure_to_notification=since,
                reported_positive=person in self._reported,
            )
        result.daily_observations.append(observations)
        upload(day, [fleet.agents[p] for p in observations], list(observations.values()))

    def _stats(self, day: int, new: int, result: SimResult, sightings: int) -> DayStats:
        ob = self.outbreak
        return DayStats(
            day=day,
            people=self.city.n,
            app_users=self.city.app_users,
            infected=int(ob.is_infected(day).sum()),
            new_infections=new,
            tests=result.tests_total,
            positives=result.positives_total,
            reports=len(result.reports),
            keys_published=sum(result.report_keys.values()),
            notified=len(result.notified_at),
            sightings=sightings,
            wall_s=0.0,
        )

    def _finish(
        self,
        result: SimResult,
        fleet: Fleet,
        backend: Backend,
        closes: list[tuple[int, IntArray, IntArray, np.ndarray]],
    ) -> None:
        end = result.end_time - 1.0
        published = ExposureTable()
        published.add(result.published)
        for person in fleet:
            fleet.tick(person, end)
            # keep only what could matter (identifiers of published keys): memory stays small
            result.stored_sightings[person] = [
                r for r in fleet.sightings(person) if r[0] in published
            ]
        if result.home_city is not None:
            home = result.home_city
            reporter_of = {k.key_data: k.reporter for k in result.published}
            for person in result.notified_at:
                items = fleet.agents[person].store.load(Matches).items
                keys = {m.key.key_data for m in items}
                result.matched_cities[person] = {
                    int(home[reporter_of[k]]) for k in keys if k in reporter_of
                }
            summary = getattr(backend, "federation_summary", None)
            if callable(summary):
                result.federation = summary(result)
        days = [np.full(len(a), d, dtype=np.int64) for d, a, _, _ in closes]
        result.close_day = np.concatenate(days) if days else result.close_day
        result.close_a = np.concatenate([a for _, a, _, _ in closes])
        result.close_b = np.concatenate([b for _, _, b, _ in closes])
        result.close_minutes = np.concatenate([m for *_, m in closes])
        result.infected_day = self.outbreak.infected_day.copy()
        result.server_storage = backend.storage()
        if self._hci is not None:
            result.hci = {
                "devices": len(self._hci.people),
                "scans": self._hci.scans,
                "advertisements_heard_over_hci": self._hci.delivered,
            }
        aggregate = getattr(backend, "aggregate", None)
        if callable(aggregate):
            result.aggregate = aggregate()
        result.aggregate["keys_published_per_day_dp"] = _dp_key_counts(result, backend)


def _dp_key_counts(result: SimResult, backend: Backend) -> dict[str, Any]:
    """The key server's own differentially private daily count of real keys (AGG-38),
    beside the true counts only the simulation knows."""
    released = getattr(backend, "key_counts", None)
    if not callable(released):
        return {"status": "not available with this backend (no key server)"}
    per_day = [0] * result.config.days
    for report in result.reports:
        if report.person in result.report_keys:
            per_day[min(result.config.days - 1, int(report.time_s // DAY_S))] += result.report_keys[
                report.person
            ]
    view: dict[str, Any] = released(result.end_time)
    view["true_counts_known_only_to_the_simulation"] = per_day
    return view
