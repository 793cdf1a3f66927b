"""Differentially private releases with OpenDP (SPEC AGG-11 … AGG-14, PRIVACY.md §4).

Mechanism: the discrete Laplace ("geometric") mechanism of OpenDP on integer vectors
under the L1 metric, with scale ``sensitivity / ε``. One device contributes at most one
report per metric and day (add/remove neighbours), so the L1 sensitivity of a count or a
one-hot histogram is 1. OpenDP computes the privacy map and we check it never exceeds
the configured ε.

Distributed noise: *each* aggregator adds an independent draw to its own aggregate share
before it leaves, so the released value is ε-DP even if one aggregator omits its noise,
and the leader (which unshards) never sees an un-noised total. The price is twice the
variance of a single draw.

Defaults (documented in SPEC §15 and PRIVACY.md): ε = 1.0 per metric per day per
aggregator draw; four metrics, so a device's daily contribution costs at most ε = 4.0 by
basic composition; minimum batch 100 reports; the key server's count of real keys per day
uses ε = 0.5 with sensitivity 14 (one upload carries at most 14 keys).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .errors import EncodingError, PrivacyBudgetError

__all__ = [
    "DEFAULT_DAILY_BUDGET",
    "DEFAULT_EPSILON",
    "DEFAULT_KEY_COUNT_EPSILON",
    "DEFAULT_MIN_BATCH_SIZE",
    "MAX_KEYS_PER_UPLOAD",
    "PrivacyLedger",
    "check_batch_size",
    "dp_key_count",
    "interval_halfwidth",
    "laplace_noise",
    "make_mechanism",
    "noise_std",
]

#: ε per metric per day (each aggregator's noise draw alone gives this guarantee).
DEFAULT_EPSILON = 1.0
#: ε budget per day across all metrics (four metrics × 1.0).
DEFAULT_DAILY_BUDGET = 4.0
#: Fewer accepted reports than this for a (day, metric): nothing is released.
DEFAULT_MIN_BATCH_SIZE = 100
#: ε of the key server's daily count of real (non-padding) keys.
DEFAULT_KEY_COUNT_EPSILON = 0.5
#: At most this many keys in one upload: the sensitivity of a daily key count.
MAX_KEYS_PER_UPLOAD = 14


def _dp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


@lru_cache(maxsize=64)
def make_mechanism(length: int, epsilon: float, sensitivity: int = 1) -> Any:
    """The OpenDP measurement: vector of ``length`` ints ↦ vector + discrete Laplace noise.

    Raises EncodingError for a non-positive ε or sensitivity; asserts via OpenDP's privacy
    map that the mechanism costs at most ``epsilon`` for the given sensitivity.
    """
    if not (epsilon > 0 and math.isfinite(epsilon)) or sensitivity < 1 or length < 1:
        raise EncodingError("epsilon, sensitivity and length must be positive")
    dp = _dp()
    scale = sensitivity / epsilon
    meas = dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T=int), size=length), dp.l1_distance(T=int), scale=scale
    )
    spent = float(meas.map(sensitivity))
    if spent > epsilon * (1 + 1e-9):
        raise PrivacyBudgetError(f"mechanism costs ε={spent}, more than {epsilon}")
    return meas


def laplace_noise(length: int, epsilon: float, sensitivity: int = 1) -> list[int]:
    """One draw of the mechanism's noise (the mechanism applied to a zero vector)."""
    return [int(x) for x in make_mechanism(length, epsilon, sensitivity)([0] * length)]


def noise_std(epsilon: float, sensitivity: int = 1, draws: int = 2) -> float:
    """Standard deviation of the sum of ``draws`` discrete-Laplace draws of scale s/ε."""
    alpha = math.exp(-epsilon / sensitivity)
    one = math.sqrt(2 * alpha) / (1 - alpha)
    return one * math.sqrt(draws)


def check_batch_size(num_reports: int, min_batch_size: int) -> None:
    """Refuse (PrivacyBudgetError) to aggregate or release a batch below the minimum."""
    if num_reports < min_batch_size:
        raise PrivacyBudgetError(
            f"batch of {num_reports} reports is below the minimum of {min_batch_size}"
        )


def dp_key_count(
    true_count: int,
    epsilon: float = DEFAULT_KEY_COUNT_EPSILON,
    sensitivity: int = MAX_KEYS_PER_UPLOAD,
) -> int:
    """The key server's differentially private count of real keys published on one day.

    Padding keys must NOT be counted in ``true_count``. The result may be negative or
    exceed the number of stored keys; clamping it to ``max(0, …)`` is post-processing and
    safe. SPEC AGG-14.
    """
    if true_count < 0:
        raise EncodingError("a count cannot be negative")
    return int(make_mechanism(1, epsilon, sensitivity)([true_count])[0])


@dataclass
class PrivacyLedger:
    """Per-day ε accounting (basic composition): each (day, metric) is released once.

    ``spent`` maps day → {metric: ε}. A release that would exceed the daily budget or
    repeat a (day, metric) raises PrivacyBudgetError and charges nothing.
    """

    daily_budget: float = DEFAULT_DAILY_BUDGET
    spent: dict[int, dict[str, float]] = field(default_factory=dict)

    def remaining(self, day: int) -> float:
        return self.daily_budget - sum(self.spent.get(day, {}).values())

    def charge(self, day: int, metric: str, epsilon: float) -> None:
        used = self.spent.setdefault(day, {})
        if metric in used:
            raise PrivacyBudgetError(f"{metric} for day {day} was already released")
        if epsilon > self.remaining(day) + 1e-12:
            raise PrivacyBudgetError(f"day {day} has ε={self.remaining(day)} left, not {epsilon}")
        used[metric] = epsilon


def interval_halfwidth(
    epsilon: float, sensitivity: int = 1, draws: int = 2, level: float = 0.95
) -> int:
    """The smallest h with P(|noise| ≤ h) ≥ ``level`` for the sum of ``draws`` discrete
    Laplace draws of scale ``sensitivity / ε``: [released − h, released + h] then holds the
    true value with probability at least ``level`` (SPEC AGG-39).

    Exact: the noise's distribution is computed by convolution, its tails cut where
    their mass is below 1e-12.
    """
    if not (0 < level < 1) or draws < 1:
        raise EncodingError("level must be in (0, 1) and draws positive")
    alpha = math.exp(-epsilon / sensitivity)
    cut = math.ceil(math.log(1e-12) / math.log(alpha)) + 1
    one = [(1 - alpha) / (1 + alpha) * alpha ** abs(k) for k in range(-cut, cut + 1)]
    dist = one
    for _ in range(draws - 1):
        out = [0.0] * (len(dist) + len(one) - 1)
        for i, p in enumerate(dist):
            for j, q in enumerate(one):
                out[i + j] += p * q
        dist = out
    centre = len(dist) // 2
    mass = dist[centre]
    h = 0
    while mass < level and h < centre:
        h += 1
        mass += dist[centre - h] + dist[centre + h]
    return h
