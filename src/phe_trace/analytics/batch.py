"""Batched Prio3 preparation: the same results as the per-report path, faster (SPEC AGG-9).

An aggregator prepares a whole day of reports of one metric at once. Every XOF call of
preparation has the same input length across reports of one metric, so all of them run
as one numpy TurboSHAKE128 over the batch (:func:`keccak.turboshake128_batch`); only the
FLP query itself stays per report. A report that fails is reported as ``None`` — the
caller never learns which check failed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import EncodingError, ReportRejectedError
from .prio3 import (
    NONCE_SIZE,
    USAGE_JOINT_RAND_PART,
    USAGE_JOINT_RAND_SEED,
    USAGE_JOINT_RANDOMNESS,
    USAGE_MEAS_SHARE,
    USAGE_PROOF_SHARE,
    USAGE_PROVE_RANDOMNESS,
    USAGE_QUERY_RANDOMNESS,
    HelperShare,
    InputShare,
    LeaderShare,
    PrepShare,
    PrepState,
    Prio3,
)
from .xof import SEED_SIZE, derive_seed_batch, expand_into_vec_batch

__all__ = ["prep_init_batch", "prep_shares_to_prep_batch", "shard_batch"]

#: Below this many reports the per-report path is as fast.
_MIN_BATCH = 4


def _rows(items: list[bytes]) -> npt.NDArray[np.uint8]:
    width = len(items[0]) if items else 0
    return np.frombuffer(b"".join(items), dtype=np.uint8).reshape(len(items), width)


def _const(data: bytes, n: int) -> npt.NDArray[np.uint8]:
    return np.tile(np.frombuffer(data, dtype=np.uint8), (n, 1))


def _expand_shares(
    vdaf: Prio3[Any, Any], ctx: bytes, agg_id: int, shares: list[InputShare]
) -> tuple[list[list[int]], list[list[int]], list[bytes | None]]:
    n = len(shares)
    if agg_id == 0:
        leaders = [s for s in shares if isinstance(s, LeaderShare)]
        if len(leaders) != n:
            raise ReportRejectedError
        return (
            [s.meas_share for s in leaders],
            [s.proofs_share for s in leaders],
            [s.blind for s in leaders],
        )
    helpers = [s for s in shares if isinstance(s, HelperShare)]
    if len(helpers) != n:
        raise ReportRejectedError
    seeds = _rows([s.seed for s in helpers])
    meas = expand_into_vec_batch(
        vdaf.field,
        seeds,
        vdaf.dst(USAGE_MEAS_SHARE, ctx),
        _const(bytes([agg_id]), n),
        vdaf.flp.meas_len,
    )
    proofs = expand_into_vec_batch(
        vdaf.field,
        seeds,
        vdaf.dst(USAGE_PROOF_SHARE, ctx),
        _const(bytes([1, agg_id]), n),
        vdaf.flp.proof_len,
    )
    return meas, proofs, [s.blind for s in helpers]


def _joint_rands(
    vdaf: Prio3[Any, Any],
    ctx: bytes,
    agg_id: int,
    nonces: list[bytes],
    public_shares: list[list[bytes] | None],
    meas: list[list[int]],
    blinds: list[bytes | None],
) -> tuple[list[bytes], list[bytes], list[list[int]]]:
    n = len(nonces)
    if any(b is None for b in blinds) or any(
        p is None or len(p) != vdaf.shares for p in public_shares
    ):
        raise ReportRejectedError
    binders = _rows(
        [
            bytes([agg_id]) + nonce + vdaf.field.encode_vec(m)
            for nonce, m in zip(nonces, meas, strict=True)
        ]
    )
    own = derive_seed_batch(
        _rows([b for b in blinds if b is not None]), vdaf.dst(USAGE_JOINT_RAND_PART, ctx), binders
    )
    parts = [bytes(row) for row in own]
    combined = []
    for part, public in zip(parts, public_shares, strict=True):
        assert public is not None
        all_parts = list(public)
        all_parts[agg_id] = part
        combined.append(b"".join(all_parts))
    seeds = derive_seed_batch(
        np.zeros((n, SEED_SIZE), dtype=np.uint8),
        vdaf.dst(USAGE_JOINT_RAND_SEED, ctx),
        _rows(combined),
    )
    jr = expand_into_vec_batch(
        vdaf.field,
        seeds,
        vdaf.dst(USAGE_JOINT_RANDOMNESS, ctx),
        _const(b"\x01", n),
        vdaf.flp.joint_rand_len,
    )
    return parts, [bytes(row) for row in seeds], jr


def prep_init_batch(
    vdaf: Prio3[Any, Any],
    verify_key: bytes,
    ctx: bytes,
    agg_id: int,
    nonces: list[bytes],
    public_shares: list[list[bytes] | None],
    shares: list[InputShare],
) -> list[tuple[PrepState, PrepShare] | None]:
    """``prep_init`` for every report of a batch; ``None`` where a report is rejected."""
    n = len(nonces)
    if n == 0:
        return []
    meas, proofs, blinds = _expand_shares(vdaf, ctx, agg_id, shares)
    parts: list[bytes | None] = [None] * n
    seeds: list[bytes | None] = [None] * n
    joint_rands: list[list[int]] = [[] for _ in range(n)]
    if vdaf.uses_joint_rand:
        p, s, joint_rands = _joint_rands(vdaf, ctx, agg_id, nonces, public_shares, meas, blinds)
        parts, seeds = list(p), list(s)
    binders = _rows([b"\x01" + nonce for nonce in nonces])
    query_rands = expand_into_vec_batch(
        vdaf.field,
        _const(verify_key, n),
        vdaf.dst(USAGE_QUERY_RANDOMNESS, ctx),
        binders,
        vdaf.flp.query_rand_len,
    )
    out: list[tuple[PrepState, PrepShare] | None] = []
    for i in range(n):
        try:
            verifier = vdaf.flp.query(
                meas[i], proofs[i], query_rands[i], joint_rands[i], vdaf.shares
            )
        except ReportRejectedError:
            out.append(None)
            continue
        out.append(
            (PrepState(vdaf.flp.valid.truncate(meas[i]), seeds[i]), PrepShare(verifier, parts[i]))
        )
    return out


def prep_shares_to_prep_batch(
    vdaf: Prio3[Any, Any], ctx: bytes, prep_shares: list[list[PrepShare]]
) -> list[tuple[bool, bytes | None]]:
    """For each report: (accepted, prep message). Rejected reports yield ``(False, None)``."""
    results: list[tuple[bool, bytes | None]] = []
    pending: list[int] = []
    for i, shares in enumerate(prep_shares):
        ok = len(shares) == vdaf.shares and all(
            len(s.verifiers_share) == vdaf.flp.verifier_len for s in shares
        )
        if ok:
            verifier = [0] * vdaf.flp.verifier_len
            for s in shares:
                verifier = vdaf.field.vec_add(verifier, s.verifiers_share)
            ok = vdaf.flp.decide(verifier)
        if ok and vdaf.uses_joint_rand:
            ok = all(s.joint_rand_part is not None for s in shares)
            if ok:
                pending.append(i)
        results.append((ok, None))
    if pending:
        combined = _rows(
            [b"".join(s.joint_rand_part or b"" for s in prep_shares[i]) for i in pending]
        )
        seeds = derive_seed_batch(
            np.zeros((len(pending), SEED_SIZE), dtype=np.uint8),
            vdaf.dst(USAGE_JOINT_RAND_SEED, ctx),
            combined,
        )
        for i, row in zip(pending, seeds, strict=True):
            results[i] = (True, bytes(row))
    return results


def shard_batch(
    vdaf: Prio3[Any, Any],
    ctx: bytes,
    measurements: list[Any],
    nonces: list[bytes],
    rands: list[bytes],
) -> list[tuple[list[bytes] | None, list[InputShare]]]:
    """``vdaf.shard`` of many measurements under one ``ctx``; same output, report by report.

    Each XOF step of sharding (helper shares, joint-randomness parts and seed, prover
    randomness) runs once over the whole batch; only the FLP proof is per report.
    """
    n = len(measurements)
    if len(nonces) != n or len(rands) != n:
        raise EncodingError("one nonce and one rand per measurement")
    if any(len(x) != NONCE_SIZE for x in nonces) or any(len(r) != vdaf.rand_size for r in rands):
        raise EncodingError(f"nonce must be {NONCE_SIZE} bytes, rand {vdaf.rand_size} bytes")
    if n < _MIN_BATCH:
        return [
            vdaf.shard(ctx, m, x, r) for m, x, r in zip(measurements, nonces, rands, strict=True)
        ]
    field, flp = vdaf.field, vdaf.flp
    meas = [flp.valid.encode(m) for m in measurements]
    seeds = np.frombuffer(b"".join(rands), dtype=np.uint8).reshape(n, -1, SEED_SIZE)
    step = 2 if vdaf.uses_joint_rand else 1
    helpers = range(1, vdaf.shares)
    helper_meas = {
        j: expand_into_vec_batch(
            field,
            seeds[:, (j - 1) * step],
            vdaf.dst(USAGE_MEAS_SHARE, ctx),
            _const(bytes([j]), n),
            flp.meas_len,
        )
        for j in helpers
    }
    leader_meas = meas
    for j in helpers:
        leader_meas = [
            field.vec_sub(a, b) for a, b in zip(leader_meas, helper_meas[j], strict=True)
        ]
    leader_blind_col = (vdaf.shares - 1) * step
    joint_rands: list[list[int]] = [[] for _ in range(n)]
    publics: list[list[bytes] | None] = [None] * n
    if vdaf.uses_joint_rand:
        part_dst = vdaf.dst(USAGE_JOINT_RAND_PART, ctx)

        def parts_of(agg_id: int, blind_col: int, shares: list[list[int]]) -> list[bytes]:
            binders = _rows(
                [
                    bytes([agg_id]) + x + field.encode_vec(m)
                    for x, m in zip(nonces, shares, strict=True)
                ]
            )
            out = derive_seed_batch(np.ascontiguousarray(seeds[:, blind_col]), part_dst, binders)
            return [bytes(row) for row in out]

        columns = [parts_of(0, leader_blind_col, leader_meas)]
        columns += [parts_of(j, (j - 1) * step + 1, helper_meas[j]) for j in helpers]
        publics = [list(parts) for parts in zip(*columns, strict=True)]
        jr_seeds = derive_seed_batch(
            np.zeros((n, SEED_SIZE), dtype=np.uint8),
            vdaf.dst(USAGE_JOINT_RAND_SEED, ctx),
            _rows([b"".join(p) for p in publics if p is not None]),
        )
        joint_rands = expand_into_vec_batch(
            field,
            jr_seeds,
            vdaf.dst(USAGE_JOINT_RANDOMNESS, ctx),
            _const(b"\x01", n),
            flp.joint_rand_len,
        )
    prove_rands = expand_into_vec_batch(
        field,
        np.ascontiguousarray(seeds[:, -1]),
        vdaf.dst(USAGE_PROVE_RANDOMNESS, ctx),
        _const(b"\x01", n),
        flp.prove_rand_len,
    )
    leader_proofs = [
        flp.prove(m, r, jr) for m, r, jr in zip(meas, prove_rands, joint_rands, strict=True)
    ]
    helper_seeds = {j: seeds[:, (j - 1) * step] for j in helpers}
    for j in helpers:
        proofs = expand_into_vec_batch(
            field,
            np.ascontiguousarray(helper_seeds[j]),
            vdaf.dst(USAGE_PROOF_SHARE, ctx),
            _const(bytes([1, j]), n),
            flp.proof_len,
        )
        leader_proofs = [field.vec_sub(a, b) for a, b in zip(leader_proofs, proofs, strict=True)]
    out: list[tuple[list[bytes] | None, list[InputShare]]] = []
    for i in range(n):
        blind = bytes(seeds[i, leader_blind_col]) if vdaf.uses_joint_rand else None
        shares: list[InputShare] = [LeaderShare(leader_meas[i], leader_proofs[i], blind)]
        for j in helpers:
            base = (j - 1) * step
            helper_blind = bytes(seeds[i, base + 1]) if vdaf.uses_joint_rand else None
            shares.append(HelperShare(bytes(seeds[i, base]), helper_blind))
        out.append((publics[i], shares))
    return out
