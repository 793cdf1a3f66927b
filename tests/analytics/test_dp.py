"""DP releases: calibration, accounting, minimum batch (SPEC AGG-11 … AGG-14).

Known answers come from the discrete Laplace distribution itself: with α = e^(−ε/Δ) its
variance is 2α/(1−α)², independent of OpenDP's code.
"""

from __future__ import annotations

import math
import statistics

import pytest

from phe_trace.analytics.dp import (
    DEFAULT_EPSILON,
    MAX_KEYS_PER_UPLOAD,
    PrivacyLedger,
    check_batch_size,
    dp_key_count,
    laplace_noise,
    make_mechanism,
)
from phe_trace.analytics.errors import EncodingError, PrivacyBudgetError


def _var(epsilon: float, sensitivity: int) -> float:
    a = math.exp(-epsilon / sensitivity)
    return 2 * a / (1 - a) ** 2


@pytest.mark.parametrize("epsilon,sensitivity", [(1.0, 1), (0.5, 1), (2.0, 3)])
def test_opendp_privacy_map_matches_configuration(epsilon: float, sensitivity: int) -> None:
    """AGG-11: the mechanism's privacy map spends exactly the configured ε, never more."""
    meas = make_mechanism(4, epsilon, sensitivity)
    assert float(meas.map(sensitivity)) <= epsilon * (1 + 1e-9)
    assert float(meas.map(sensitivity)) >= epsilon * 0.999


@pytest.mark.parametrize("epsilon", [1.0, 0.25])
def test_noise_is_calibrated(epsilon: float) -> None:
    """AGG-11: discrete Laplace noise of scale 1/ε (mean 0, variance 2α/(1−α)²)."""
    draws = [x for _ in range(400) for x in laplace_noise(10, epsilon)]
    assert abs(statistics.fmean(draws)) < 4 * math.sqrt(_var(epsilon, 1) / len(draws))
    ratio = statistics.pvariance(draws) / _var(epsilon, 1)
    assert 0.85 < ratio < 1.15


def test_key_count_noise_scales_with_upload_size() -> None:
    """AGG-14: sensitivity 14 keys per upload, ε = 0.5 → scale 28."""
    values = [dp_key_count(1000) for _ in range(1500)]
    assert abs(statistics.fmean(values) - 1000) < 4 * math.sqrt(_var(0.5, 14) / 1500)
    assert MAX_KEYS_PER_UPLOAD == 14
    assert 0.75 < statistics.pvariance(values) / _var(0.5, 14) < 1.25
    with pytest.raises(EncodingError):
        dp_key_count(-1)


def test_below_min_batch_nothing_is_released() -> None:
    """AGG-12."""
    with pytest.raises(PrivacyBudgetError):
        check_batch_size(99, 100)
    check_batch_size(100, 100)


def test_ledger_refuses_double_release_and_overspending() -> None:
    """AGG-13."""
    ledger = PrivacyLedger(daily_budget=2.5)
    ledger.charge(10, "notified", DEFAULT_EPSILON)
    with pytest.raises(PrivacyBudgetError):
        ledger.charge(10, "notified", DEFAULT_EPSILON)
    ledger.charge(10, "risk_level", 1.0)
    with pytest.raises(PrivacyBudgetError):
        ledger.charge(10, "reported_positive", 1.0)
    assert ledger.remaining(10) == pytest.approx(0.5)
    ledger.charge(11, "reported_positive", 1.0)


def test_bad_parameters_refused() -> None:
    for eps in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(EncodingError):
            make_mechanism(1, eps, 1)


def test_interval_halfwidth_matches_the_closed_form_and_covers() -> None:
    """AGG-39: one draw: P(|X| > h) = 2α^(h+1)/(1+α) (α = e^(-ε/s)), the smallest h with
    at most 5 % outside; two draws: the interval covers ≥ 95 % of OpenDP's own noise."""
    from phe_trace.analytics.dp import interval_halfwidth

    for eps, sens in ((1.0, 1), (0.5, 14), (0.1, 1)):
        alpha = math.exp(-eps / sens)
        want = next(h for h in range(10_000) if 2 * alpha ** (h + 1) / (1 + alpha) <= 0.05)
        assert interval_halfwidth(eps, sens, draws=1) == want
    h = interval_halfwidth(1.0, 1, draws=2)
    draws = [a + b for a, b in zip(laplace_noise(4000, 1.0), laplace_noise(4000, 1.0), strict=True)]
    inside = sum(abs(x) <= h for x in draws) / len(draws)
    narrower = sum(abs(x) <= h - 1 for x in draws) / len(draws)
    assert inside >= 0.93 and narrower < 0.95
