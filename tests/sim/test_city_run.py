"""A tiny seeded city, end to end, checked against the simulation's own ground truth."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from phe_trace.crypto import rpi, rpik
from phe_trace.sim import SimConfig, run_demo
from phe_trace.sim.config import SIM_EPOCH

DAY = 86_400


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("report")
    config = SimConfig.create(
        people=40, days=4, seed=7, uptake=1.0, report_rate=1.0, initial_infected=10, out=out
    )
    days = []
    return run_demo(config, days.append), days


def _first_export_run(config, ready: float) -> float:
    """The first export run at least an hour after ``ready`` (the batch's minimum age)."""
    t = SIM_EPOCH + (ready - SIM_EPOCH) // DAY * DAY
    while True:
        for hour in sorted(config.export_hours):
            if t + hour * 3600 >= ready + 3600:
                return t + hour * 3600
        t += DAY


def _slow_should_notify(result) -> set[int]:
    """Independent reading of the ground-truth rule (see phe_trace.sim.metrics)."""
    config = result.config
    end = SIM_EPOCH + config.days * DAY
    should = set()
    for report in result.reports:
        if report.person not in result.report_keys:
            continue  # refused by the services: nothing was published
        reported_at = SIM_EPOCH + report.time_s
        window_end = (reported_at // config.export_period_s + 1) * config.export_period_s
        report_day = int(report.time_s // DAY)
        for day, a, b in zip(
            result.close_day.tolist(), result.close_a.tolist(), result.close_b.tolist(), strict=True
        ):
            for person, other in ((a, b), (b, a)):
                if other != report.person or not result.city.has_app[person]:
                    continue
                if not report_day - 13 <= day <= report_day:
                    continue
                # a key still valid when published is embargoed until its day is over
                ready = max(window_end, SIM_EPOCH + (day + 1) * DAY)
                available = _first_export_run(config, ready)
                check = SIM_EPOCH + (available - SIM_EPOCH) // DAY * DAY
                check += result.sync_hour[person] * 3600
                if check < available:
                    check += DAY
                if check < end:
                    should.add(person)
    return should


def test_progress_reports_every_simulated_day(outcome) -> None:
    _, days = outcome
    assert [d.day for d in days] == [0, 1, 2, 3]
    assert all(d.people == 40 for d in days)
    infected = [d.infected for d in days]
    assert infected == sorted(infected)  # cumulative


def test_someone_reported_and_keys_were_published(outcome) -> None:
    result = outcome[0].result
    assert result.reports, "the seeded city must produce reports to be a useful test"
    assert sum(result.report_keys.values()) > 0
    assert result.export_times


def test_every_notification_is_a_true_or_a_counted_false_positive(outcome) -> None:
    result, metrics = outcome[0].result, outcome[0].metrics
    should = _slow_should_notify(result)
    notified = set(result.notified_at)
    c = metrics.confusion
    assert set(metrics.should_notify) == should
    assert c.true_positives == len(notified & should)
    assert c.false_positives == len(notified - should)
    assert c.false_negatives == len(should - notified)
    assert c.true_positives + c.false_positives == len(notified)
    if notified:
        assert c.precision == pytest.approx(len(notified & should) / len(notified))
    if should:
        assert c.recall == pytest.approx(len(notified & should) / len(should))


def test_notified_devices_really_stored_a_reporters_identifier(outcome) -> None:
    """Notifications come from real sightings: recompute RPIs one by one with the crypto."""
    result = outcome[0].result
    published = set()
    for key in result.published:
        k = rpik(key.key_data)
        for i in range(key.rolling_period):
            published.add(rpi(k, key.rolling_start_interval_number + i))
    for person in result.notified_at:
        stored = {s[0] for s in result.stored_sightings[person]}
        assert stored & published, f"person {person} was notified without hearing a reporter"


def test_no_notification_before_any_export(outcome) -> None:
    result = outcome[0].result
    first_export = min(result.export_times)
    assert all(t >= first_export for t in result.notified_at.values())


def test_tradeoff_moves_the_right_way(outcome) -> None:
    points = outcome[0].metrics.tradeoff
    notified = [p.notified for p in points]
    assert notified == sorted(notified)  # a looser threshold never notifies fewer people


def test_report_files_exist_and_html_links_only_to_them(outcome) -> None:
    out: Path = outcome[0].result.config.out
    html = (out / "report.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs
    for ref in refs:
        assert (out / ref).is_file(), ref
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    n = summary["notifications"]
    if n["notified"]:
        assert n["precision"] == pytest.approx(n["true_positives"] / n["notified"])
    assert summary["config"]["people"] == 40
    assert summary["parts"]


def test_same_seed_same_epidemic(tmp_path: Path, outcome) -> None:
    first = outcome[0].result
    again = run_demo(
        SimConfig.create(
            people=40,
            days=4,
            seed=7,
            uptake=1.0,
            report_rate=1.0,
            initial_infected=10,
            out=tmp_path,
        )
    ).result
    assert np.array_equal(first.infected_day, again.infected_day)
    assert [r.person for r in first.reports] == [r.person for r in again.reports]


def test_server_stored_keys_but_nothing_about_people(outcome) -> None:
    """What the key server holds: diagnosis keys and export bookkeeping, no identity."""
    result = outcome[0].result
    storage = result.server_storage
    assert result.backend_real, "the real key server should run under the demo"
    assert storage["identity_columns"] == []
    columns = {c.lower() for t in storage["tables"].values() for c in t["columns"]}
    for word in ("ip", "ip_address", "user_agent", "device_id", "phone", "email"):
        assert word not in columns
    exposures = [t for name, t in storage["tables"].items() if name.endswith("exposures")]
    assert exposures and exposures[0]["rows"] >= sum(result.report_keys.values()) - len(
        result.report_keys
    )  # every report's keys, less at most the embargoed key of its own day


def test_health_authority_aggregate_counts_the_codes_it_issued(outcome) -> None:
    result = outcome[0].result
    per_day = result.aggregate["verification_per_day"]
    assert sum(d["codes_issued"] for d in per_day) == len(result.reports)
    assert sum(d["tokens_claimed"] for d in per_day) == len(result.report_keys)
