"""Prio3 end to end: correctness for random inputs and rejection of dishonest reports.

SPEC AGG-5 (correctness: unshard(aggregate(prepare(shard(m)))) = Σ m), AGG-6 (a report
that is out of range, carries a bad proof, a tampered share, a wrong joint-randomness
part or a wrong length is rejected, and the rejection says nothing about why).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phe_trace.analytics import EncodingError, ReportRejectedError
from phe_trace.analytics.prio3 import (
    NONCE_SIZE,
    HelperShare,
    LeaderShare,
    Prio3,
    prio3_count,
    prio3_histogram,
    prio3_sum,
)

CTX = b"phe-trace test"
VK = bytes(range(32))


def run(vdaf: Prio3[Any, Any], measurements: list[Any]) -> Any:
    """The whole flow with fresh randomness, through the byte encodings."""
    out: list[list[list[int]]] = [[] for _ in range(vdaf.shares)]
    for m in measurements:
        nonce = os.urandom(NONCE_SIZE)
        public, shares = vdaf.shard(CTX, m, nonce, os.urandom(vdaf.rand_size))
        public = vdaf.decode_public_share(vdaf.encode_public_share(public))
        shares = [
            vdaf.decode_input_share(i, vdaf.encode_input_share(s)) for i, s in enumerate(shares)
        ]
        for agg, o in zip(out, prepare(vdaf, nonce, public, shares), strict=True):
            agg.append(o)
    return vdaf.unshard([vdaf.aggregate(o) for o in out], len(measurements))


def prepare(
    vdaf: Prio3[Any, Any],
    nonce: bytes,
    public: Any,
    shares: list[Any],
    verify_keys: list[bytes] | None = None,
) -> list[list[int]]:
    keys = verify_keys or [VK] * vdaf.shares
    inits = [vdaf.prep_init(keys[i], CTX, i, nonce, public, s) for i, s in enumerate(shares)]
    msg = vdaf.prep_shares_to_prep(CTX, [p for _, p in inits])
    return [vdaf.prep_next(state, msg) for state, _ in inits]


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(0, 1), min_size=1, max_size=6))
def test_count_equals_plain_sum(ms: list[int]) -> None:
    assert run(prio3_count(), ms) == sum(ms)


@settings(max_examples=15, deadline=None)
@given(
    st.integers(1, 300).flatmap(
        lambda mx: st.tuples(st.just(mx), st.lists(st.integers(0, mx), min_size=1, max_size=4))
    )
)
def test_sum_equals_plain_sum(case: tuple[int, list[int]]) -> None:
    mx, ms = case
    assert run(prio3_sum(mx), ms) == sum(ms)


@settings(max_examples=15, deadline=None)
@given(
    st.integers(1, 16).flatmap(
        lambda n: st.tuples(
            st.just(n), st.integers(1, n), st.lists(st.integers(0, n - 1), min_size=1, max_size=4)
        )
    ),
    st.integers(2, 3),
)
def test_histogram_equals_plain_counts(case: tuple[int, int, list[int]], shares: int) -> None:
    n, chunk, ms = case
    assert run(prio3_histogram(n, chunk, shares), ms) == [ms.count(b) for b in range(n)]


# --- dishonest clients -----------------------------------------------------------------


def _bypass_encode(vdaf: Prio3[Any, Any], encoded: list[int]) -> Prio3[Any, Any]:
    """A client that skips the range check and proves whatever vector it likes."""
    vdaf.flp.valid.encode = lambda _m: list(encoded)  # type: ignore[method-assign]
    return vdaf


def _shard(vdaf: Prio3[Any, Any], m: Any) -> tuple[bytes, Any, list[Any]]:
    nonce = os.urandom(NONCE_SIZE)
    public, shares = vdaf.shard(CTX, m, nonce, os.urandom(vdaf.rand_size))
    return nonce, public, shares


@pytest.mark.parametrize(
    "make,encoded",
    [
        (lambda: prio3_count(), [2]),
        (lambda: prio3_count(), [(-1) % (2**64 - 2**32 + 1)]),
        # Sum with max 10 (4 bits, offset 5): 12 encodes as bits of 12 and of 17 → 17 > 15.
        (lambda: prio3_sum(10), [0, 0, 1, 1, 1, 0, 0, 0]),
        (lambda: prio3_sum(10), [0, 0, 0, 0, 0, 0, 0, 0]),  # inconsistent offset copy
        (lambda: prio3_histogram(4, 2), [1, 1, 0, 0]),  # two-hot
        (lambda: prio3_histogram(4, 2), [0, 0, 0, 0]),  # no bucket
        (lambda: prio3_histogram(4, 2), [2, 0, 0, (-1) % (2**66 * 4611686018427387897 + 1)]),
    ],
)
def test_out_of_range_measurement_rejected(make: Any, encoded: list[int]) -> None:
    vdaf = _bypass_encode(make(), encoded)
    honest = make()
    nonce, public, shares = _shard(vdaf, 0)
    with pytest.raises(ReportRejectedError) as info:
        prepare(honest, nonce, public, shares)
    assert str(info.value) == "report rejected"


@pytest.mark.parametrize(
    "make", [lambda: prio3_count(), lambda: prio3_sum(100), lambda: prio3_histogram(8, 3)]
)
@pytest.mark.parametrize("part", ["proof", "meas"])
def test_tampered_leader_share_rejected(make: Any, part: str) -> None:
    vdaf = make()
    nonce, public, shares = _shard(vdaf, 1)
    lead: LeaderShare = shares[0]
    q = vdaf.field.modulus
    if part == "proof":
        proof = list(lead.proofs_share)
        proof[-1] = (proof[-1] + 1) % q
        shares[0] = replace(lead, proofs_share=proof)
    else:
        meas = list(lead.meas_share)
        meas[0] = (meas[0] + 1) % q
        shares[0] = replace(lead, meas_share=meas)
    with pytest.raises(ReportRejectedError):
        prepare(vdaf, nonce, public, shares)


def test_tampered_helper_seed_rejected() -> None:
    vdaf = prio3_sum(100)
    nonce, public, shares = _shard(vdaf, 42)
    helper: HelperShare = shares[1]
    shares[1] = replace(helper, seed=bytes(32))
    with pytest.raises(ReportRejectedError):
        prepare(vdaf, nonce, public, shares)


def test_forged_joint_randomness_part_rejected() -> None:
    """A public share that does not match the shares (AGG-6, joint-rand check)."""
    vdaf = prio3_histogram(8, 3)
    nonce, public, shares = _shard(vdaf, 3)
    assert public is not None
    forged = [public[0], bytes(32)]
    with pytest.raises(ReportRejectedError):
        prepare(vdaf, nonce, forged, shares)


def test_aggregators_with_different_verify_keys_reject() -> None:
    vdaf = prio3_count()
    nonce, public, shares = _shard(vdaf, 1)
    with pytest.raises(ReportRejectedError):
        prepare(vdaf, nonce, public, shares, verify_keys=[VK, bytes(32)])


def test_wrong_lengths_refused() -> None:
    """AGG-3, AGG-6: ragged lengths and elements not below the modulus are refused."""
    vdaf = prio3_histogram(8, 3)
    nonce, public, shares = _shard(vdaf, 0)
    leader = vdaf.encode_input_share(shares[0])
    helper = vdaf.encode_input_share(shares[1])
    for agg_id, data in [(0, leader[:-1]), (0, leader + b"\0"), (1, helper[:-1]), (1, helper * 2)]:
        with pytest.raises(EncodingError):
            vdaf.decode_input_share(agg_id, data)
    with pytest.raises(EncodingError):
        vdaf.decode_public_share(vdaf.encode_public_share(public)[:-1])
    with pytest.raises(EncodingError):
        vdaf.decode_prep_share(b"\0" * 7)
    with pytest.raises(EncodingError):
        prio3_count().decode_input_share(0, b"\xff" * 48)  # elements ≥ modulus
    with pytest.raises(EncodingError):
        vdaf.shard(CTX, 8, nonce, os.urandom(vdaf.rand_size))
    with pytest.raises(EncodingError):
        vdaf.shard(CTX, 0, nonce[:-1], os.urandom(vdaf.rand_size))
