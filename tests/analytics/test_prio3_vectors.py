"""Prio3 against the VDAF specification's published test vectors (SPEC AGG-1 … AGG-7).

Every intermediate value is compared: input shares, public share, prep shares, prep
message, output shares, aggregate shares and the aggregate result.
"""

from __future__ import annotations

from typing import Any

import pytest

from phe_trace.analytics.batch import prep_init_batch, prep_shares_to_prep_batch, shard_batch
from phe_trace.analytics.prio3 import Prio3, prio3_count, prio3_histogram, prio3_sum
from tests.vectors import load_vectors


def _instance(name: str, v: dict[str, Any]) -> Prio3[Any, Any]:
    if name == "prio3_count":
        return prio3_count(v["shares"])
    if name == "prio3_sum":
        return prio3_sum(v["max_measurement"], v["shares"])
    return prio3_histogram(v["length"], v["chunk_length"], v["shares"])


NAMES = ["prio3_count", "prio3_sum", "prio3_histogram", "prio3_histogram_3shares"]


@pytest.mark.parametrize("name", NAMES)
def test_published_vector(name: str) -> None:
    """AGG-1, AGG-2, AGG-3, AGG-4, AGG-5: shard, prep, aggregate and unshard, byte for byte."""
    v = load_vectors(name)
    assert v["provenance"]["kind"] == "spec"
    vdaf = _instance(name.replace("_3shares", ""), v)
    ctx = bytes.fromhex(v["ctx"])
    verify_key = bytes.fromhex(v["verify_key"])
    out_shares: list[list[list[int]]] = [[] for _ in range(vdaf.shares)]
    for report in v["prep"]:
        nonce = bytes.fromhex(report["nonce"])
        public_share, shares = vdaf.shard(
            ctx, report["measurement"], nonce, bytes.fromhex(report["rand"])
        )
        assert vdaf.encode_public_share(public_share).hex() == report["public_share"]
        assert [vdaf.encode_input_share(s).hex() for s in shares] == report["input_shares"]
        # The aggregators start from the encoded bytes, as they would on the wire.
        states, prep_shares = [], []
        for agg_id, encoded in enumerate(report["input_shares"]):
            share = vdaf.decode_input_share(agg_id, bytes.fromhex(encoded))
            state, prep_share = vdaf.prep_init(
                verify_key,
                ctx,
                agg_id,
                nonce,
                vdaf.decode_public_share(bytes.fromhex(report["public_share"])),
                share,
            )
            states.append(state)
            prep_shares.append(prep_share)
        assert [vdaf.encode_prep_share(p).hex() for p in prep_shares] == report["prep_shares"][0]
        decoded = [vdaf.decode_prep_share(bytes.fromhex(h)) for h in report["prep_shares"][0]]
        prep_msg = vdaf.prep_shares_to_prep(ctx, decoded)
        assert (prep_msg or b"").hex() == report["prep_messages"][0]
        for agg_id, state in enumerate(states):
            out = vdaf.prep_next(state, prep_msg)
            assert vdaf.field.encode_vec(out).hex() == "".join(report["out_shares"][agg_id])
            out_shares[agg_id].append(out)
    agg_shares = [vdaf.aggregate(o) for o in out_shares]
    assert [vdaf.encode_agg_share(a).hex() for a in agg_shares] == v["agg_shares"]
    decoded_aggs = [vdaf.decode_agg_share(bytes.fromhex(h)) for h in v["agg_shares"]]
    assert vdaf.unshard(decoded_aggs, len(v["prep"])) == v["agg_result"]


@pytest.mark.parametrize("name", NAMES)
def test_published_vector_batched(name: str) -> None:
    """AGG-9: the batched shard and preparation reproduce the vector byte for byte.

    Each vector's reports are repeated so that the batch is large enough for the
    batched (numpy) path rather than the per-report fallback.
    """
    v = load_vectors(name)
    vdaf = _instance(name.replace("_3shares", ""), v)
    ctx = bytes.fromhex(v["ctx"])
    verify_key = bytes.fromhex(v["verify_key"])
    reports = v["prep"] * 5
    nonces = [bytes.fromhex(r["nonce"]) for r in reports]
    sharded = shard_batch(
        vdaf,
        ctx,
        [r["measurement"] for r in reports],
        nonces,
        [bytes.fromhex(r["rand"]) for r in reports],
    )
    for report, (public_share, shares) in zip(reports, sharded, strict=True):
        assert vdaf.encode_public_share(public_share).hex() == report["public_share"]
        assert [vdaf.encode_input_share(s).hex() for s in shares] == report["input_shares"]
    publics = [vdaf.decode_public_share(bytes.fromhex(r["public_share"])) for r in reports]
    per_agg = [
        prep_init_batch(
            vdaf,
            verify_key,
            ctx,
            agg_id,
            nonces,
            publics,
            [
                vdaf.decode_input_share(agg_id, bytes.fromhex(r["input_shares"][agg_id]))
                for r in reports
            ],
        )
        for agg_id in range(vdaf.shares)
    ]
    for i, report in enumerate(reports):
        got = [per_agg[a][i] for a in range(vdaf.shares)]
        assert all(g is not None for g in got)
        encoded = [vdaf.encode_prep_share(g[1]) for g in got if g is not None]
        assert [e.hex() for e in encoded] == report["prep_shares"][0]
    decided = prep_shares_to_prep_batch(
        vdaf,
        ctx,
        [[per_agg[a][i][1] for a in range(vdaf.shares)] for i in range(len(reports))],  # type: ignore[index]
    )
    assert [(msg or b"").hex() for _, msg in decided] == [r["prep_messages"][0] for r in reports]
    assert all(ok for ok, _ in decided)
