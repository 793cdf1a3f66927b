"""Batched preparation equals the per-report reference path (SPEC AGG-9)."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pytest

from phe_trace.analytics.batch import prep_init_batch, prep_shares_to_prep_batch, shard_batch
from phe_trace.analytics.errors import EncodingError, ReportRejectedError
from phe_trace.analytics.prio3 import (
    NONCE_SIZE,
    LeaderShare,
    Prio3,
    prio3_count,
    prio3_histogram,
    prio3_sum,
)

CTX = b"batch"
VK = os.urandom(32)


@pytest.mark.parametrize(
    "make,values",
    [
        (lambda: prio3_count(), [0, 1, 1, 0, 1]),
        (lambda: prio3_sum(50), [0, 50, 7, 13]),
        (lambda: prio3_histogram(15, 4), [0, 14, 3, 3, 9]),
    ],
)
def test_batch_matches_scalar_and_rejects_the_tampered_report(make: Any, values: list[int]) -> None:
    vdaf: Prio3[Any, Any] = make()
    reports = []
    for v in values:
        nonce = os.urandom(NONCE_SIZE)
        public, shares = vdaf.shard(CTX, v, nonce, os.urandom(vdaf.rand_size))
        reports.append((nonce, public, shares))
    # Report 1 is tampered with: its leader proof share is off by one.
    lead: LeaderShare = reports[1][2][0]
    bad_proof = list(lead.proofs_share)
    bad_proof[0] = (bad_proof[0] + 1) % vdaf.field.modulus
    reports[1][2][0] = replace(lead, proofs_share=bad_proof)

    per_agg = []
    for agg_id in range(2):
        batch = prep_init_batch(
            vdaf,
            VK,
            CTX,
            agg_id,
            [r[0] for r in reports],
            [r[1] for r in reports],
            [r[2][agg_id] for r in reports],
        )
        for (nonce, public, shares), got in zip(reports, batch, strict=True):
            assert got == vdaf.prep_init(VK, CTX, agg_id, nonce, public, shares[agg_id])
        per_agg.append(batch)
    combined = prep_shares_to_prep_batch(
        vdaf, CTX, [[a[1], b[1]] for a, b in zip(per_agg[0], per_agg[1], strict=True)]
    )
    for i, (ok, msg) in enumerate(combined):
        shares = [per_agg[0][i][1], per_agg[1][i][1]]  # type: ignore[index]
        if i == 1:
            assert not ok
            with pytest.raises(ReportRejectedError):
                vdaf.prep_shares_to_prep(CTX, shares)
        else:
            assert ok
            assert msg == vdaf.prep_shares_to_prep(CTX, shares)


@pytest.mark.parametrize(
    "make,values",
    [
        (lambda: prio3_count(), [0, 1, 1, 0, 1, 1]),
        (lambda: prio3_sum(50), [0, 50, 7, 13, 49]),
        (lambda: prio3_histogram(15, 4), [0, 14, 3, 3, 9, 1, 7]),
        (lambda: prio3_histogram(8, 3, shares=3), [0, 7, 2, 2, 5]),
        (lambda: prio3_histogram(8, 3), [4, 2]),  # below the batch size: per-report path
    ],
)
def test_shard_batch_equals_shard(make: Any, values: list[int]) -> None:
    vdaf: Prio3[Any, Any] = make()
    nonces = [os.urandom(NONCE_SIZE) for _ in values]
    rands = [os.urandom(vdaf.rand_size) for _ in values]
    got = shard_batch(vdaf, CTX, values, nonces, rands)
    for v, nonce, rand, (public, shares) in zip(values, nonces, rands, got, strict=True):
        assert (public, shares) == vdaf.shard(CTX, v, nonce, rand)


def test_shard_batch_refuses_bad_lengths() -> None:
    vdaf = prio3_count()
    with pytest.raises(EncodingError):
        shard_batch(vdaf, CTX, [1, 0], [bytes(NONCE_SIZE)], [bytes(vdaf.rand_size)] * 2)
    with pytest.raises(EncodingError):
        shard_batch(vdaf, CTX, [1] * 5, [bytes(NONCE_SIZE)] * 5, [bytes(vdaf.rand_size - 1)] * 5)
    with pytest.raises(EncodingError):
        shard_batch(vdaf, CTX, [2] * 5, [bytes(NONCE_SIZE)] * 5, [bytes(vdaf.rand_size)] * 5)
