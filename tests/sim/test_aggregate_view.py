"""The health authority's aggregate view in the demo: real aggregators, noisy releases.

Tiny seeded cities on the real key server and two real aggregators. The truth each
release is checked against is recounted here from the simulation's own records
(notification times, published reports, each device's observations), and the error
bound is derived from the noise scale (sensitivity / ε), not read from the output.
"""

from __future__ import annotations

import json
import math

import pytest

from phe_trace.sim import SimConfig, run_demo

DAY = 86_400
EPSILON = 1.0
#: One report per device, metric and day: a count or one-hot histogram has L1 sensitivity 1.
SENSITIVITY = 1
#: Each aggregator adds one discrete-Laplace draw of scale sensitivity/ε; the released value
#: carries the sum of two. P(|X1 + X2| > 20 · scale) < 1e-7 per value at this scale, so the
#: test does not flake over the few dozen values it checks.
BOUND = 20 * SENSITIVITY / EPSILON

METRIC_LENGTHS = {
    "notified": 1,
    "risk_level": 8,
    "days_to_notification": 15,
    "reported_positive": 1,
}


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory):
    config = SimConfig.create(
        people=40,
        days=4,
        seed=7,
        uptake=1.0,
        report_rate=1.0,
        initial_infected=10,
        analytics_min_batch=20,
        analytics_epsilon=EPSILON,
        out=tmp_path_factory.mktemp("aggregate-report"),
    )
    return run_demo(config)


@pytest.fixture(scope="module")
def below_minimum(tmp_path_factory: pytest.TempPathFactory):
    config = SimConfig.create(
        people=12,
        days=1,
        seed=3,
        uptake=1.0,
        analytics_min_batch=13,
        analytics_epsilon=EPSILON,
        out=tmp_path_factory.mktemp("below-minimum"),
    )
    return run_demo(config)


def _view(outcome) -> dict:
    summary = json.loads((outcome.result.config.out / "summary.json").read_text())
    view = summary["aggregate"]["privacy_preserving_analytics"]
    assert isinstance(view, dict), view
    return view


def _recount(outcome, day: int) -> dict[str, list[int]]:
    """The day's plain totals, tallied here from the simulation's records."""
    result = outcome.result
    start = result.end_time - (result.config.days - day) * DAY
    observed = result.daily_observations[day]
    truth = {name: [0] * n for name, n in METRIC_LENGTHS.items()}
    truth["notified"][0] = sum(1 for t in result.notified_at.values() if start <= t < start + DAY)
    truth["reported_positive"][0] = sum(
        1 for r in result.reports if r.person in result.report_keys and int(r.time_s // DAY) == day
    )
    for obs in observed.values():
        truth["risk_level"][obs.max_risk_level or 0] += 1
        truth["days_to_notification"][
            obs.days_exposure_to_notification if obs.notified else 14
        ] += 1
    return truth


def test_the_report_shows_released_aggregates_beside_the_truth(released) -> None:
    view = _view(released)
    assert view["min_batch_size"] == 20
    assert view["epsilon_per_metric_per_day"] == EPSILON
    assert [d["day"] for d in view["days"]] == [0, 1, 2, 3]
    html = (released.result.config.out / "report.html").read_text()
    assert "released (noisy)" in html and "true (simulation)" in html
    app_users = released.result.city.app_users
    for d in view["days"]:
        assert d["devices"] == app_users
        truth = _recount(released, d["day"])
        for metric, length in METRIC_LENGTHS.items():
            m = d["metrics"][metric]
            assert m["status"] == "released"
            assert m["epsilon"] == EPSILON
            assert m["report_count"] == app_users
            assert m["true"] == truth[metric]
            assert len(m["released"]) == length
            for got, want, err in zip(m["released"], truth[metric], m["abs_error"], strict=True):
                assert abs(got - want) <= BOUND
                assert err == abs(got - want)


def test_the_noise_is_really_there(released) -> None:
    """Dozens of released values, each with two independent draws: not all can be exact."""
    view = _view(released)
    errors = [
        e for d in view["days"] for m in d["metrics"].values() for e in (m["abs_error"] or [])
    ]
    assert len(errors) == 4 * sum(METRIC_LENGTHS.values())
    assert any(e > 0 for e in errors)
    # Mean |error| of a sum of two discrete Laplace draws (α = e^-ε) is well below 3 · scale.
    assert sum(errors) / len(errors) < 3 / EPSILON
    assert not math.isnan(view["noise_std"])


def test_the_city_s_notifications_and_reports_are_in_the_truth(released) -> None:
    """The seeded city must give the aggregates something to count."""
    result = released.result
    assert result.notified_at and result.report_keys
    view = _view(released)
    assert sum(d["metrics"]["reported_positive"]["true"][0] for d in view["days"]) > 0


def test_a_day_below_the_minimum_batch_releases_nothing(below_minimum) -> None:
    view = _view(below_minimum)
    assert below_minimum.result.city.app_users < 13
    (day,) = view["days"]
    for metric in METRIC_LENGTHS:
        m = day["metrics"][metric]
        assert m["released"] is None
        assert "epsilon" not in m and "abs_error" not in m
        assert m["status"] == "not released (below minimum batch 13)"
    html = (below_minimum.result.config.out / "report.html").read_text()
    assert "not released (below minimum batch 13)" in html
