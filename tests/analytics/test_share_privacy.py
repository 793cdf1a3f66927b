"""One aggregator's shares alone reveal nothing about a device's value (SPEC AGG-8).

Statistical: we shard many reports with known measurements and try to recover the
measurement from what ONE aggregator stores (its input share, expanded for the helper).
Every attack should do no better than guessing; an implementation that leaked (e.g. a
share that is the value itself, or a biased mask) fails these bounds by a wide margin.
"""

from __future__ import annotations

import os
from typing import Any

from phe_trace.analytics.prio3 import NONCE_SIZE, Prio3, prio3_count, prio3_histogram

CTX = b"phe-trace test"
N = 1200


def _meas_share(vdaf: Prio3[Any, Any], m: Any, agg_id: int) -> list[int]:
    nonce = os.urandom(NONCE_SIZE)
    _, shares = vdaf.shard(CTX, m, nonce, os.urandom(vdaf.rand_size))
    meas, _, _ = vdaf.expand_input_share(CTX, agg_id, shares[agg_id])
    return meas


def _accuracy(guess: list[int], truth: list[int]) -> float:
    return sum(g == t for g, t in zip(guess, truth, strict=True)) / len(truth)


def test_count_share_does_not_reveal_the_bit() -> None:
    """AGG-8: neither side's Count shares predict the bit better than guessing."""
    vdaf = prio3_count()
    q = vdaf.field.modulus
    truth = [i % 2 for i in range(2 * N)]
    for agg_id in (0, 1):
        xs = [_meas_share(vdaf, m, agg_id)[0] for m in truth]
        # Distinguishers: the share itself as the value, its parity, its half of the field,
        # and "the share is the negation of a small number" (x > q - 2).
        attacks = [
            [1 if x == 1 else 0 for x in xs],
            [x & 1 for x in xs],
            [1 if x > q // 2 else 0 for x in xs],
            [1 if x >= q - 2 else 0 for x in xs],
        ]
        for guess in attacks:
            # Binomial(2400, 1/2): 4 standard deviations ≈ 0.041.
            assert abs(_accuracy(guess, truth) - 0.5) < 0.05


def test_histogram_share_does_not_reveal_the_bucket() -> None:
    """AGG-8: neither side's Histogram shares predict the bucket better than guessing."""
    vdaf = prio3_histogram(8, 3)
    truth = [i % 8 for i in range(N)]
    for agg_id in (0, 1):
        vecs = [_meas_share(vdaf, m, agg_id) for m in truth]
        attacks = [
            [max(range(8), key=lambda b, v=v: v[b]) for v in vecs],
            [min(range(8), key=lambda b, v=v: v[b]) for v in vecs],
            [next((b for b in range(8) if v[b] == 1), 0) for v in vecs],
            [max(range(8), key=lambda b, v=v: v[b] & 1) for v in vecs],
        ]
        for guess in attacks:
            # Chance is 1/8; Binomial(1200, 1/8) has σ ≈ 0.0095.
            assert abs(_accuracy(guess, truth) - 1 / 8) < 0.045


def test_shares_recombine() -> None:
    """Control for the tests above: both sides together do reveal the value."""
    vdaf = prio3_count()
    nonce = os.urandom(NONCE_SIZE)
    _, shares = vdaf.shard(CTX, 1, nonce, os.urandom(vdaf.rand_size))
    a = vdaf.expand_input_share(CTX, 0, shares[0])[0]
    b = vdaf.expand_input_share(CTX, 1, shares[1])[0]
    assert vdaf.field.vec_add(a, b) == [1]
