"""Prio3 (draft-irtf-cfrg-vdaf §7): sharding, preparation, aggregation, unsharding.

A client encodes its measurement, splits it into additive shares (the leader's share
explicit, each helper's expanded from a 32-byte seed), and proves validity with the
FLP; each aggregator queries its share of measurement and proof, the verifier shares
are summed into one verifier message that either accepts or rejects, and only accepted
output shares are aggregated. Joint randomness (Histogram) is derived from per-share
"parts" that the aggregators recompute, so a client cannot choose it after seeing it.
SPEC AGG-1 … AGG-7.

Simplifications said out loud: one proof per report (``PROOFS = 1``, as all three
standard instantiations use); the verifier message is computed by whichever party holds
all verifier shares (here the leader) — this is the one-round Prio3 preparation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import EncodingError, ReportRejectedError
from .field import FIELD64, FIELD128
from .flp import Count, FlpGeneric, Histogram, Sum, Valid
from .xof import SEED_SIZE, derive_seed, expand_into_vec

__all__ = [
    "DRAFT_VERSION",
    "NONCE_SIZE",
    "VERIFY_KEY_SIZE",
    "HelperShare",
    "LeaderShare",
    "PrepShare",
    "PrepState",
    "Prio3",
    "prio3_count",
    "prio3_histogram",
    "prio3_sum",
]

M = TypeVar("M")
R = TypeVar("R")

#: The draft whose test vectors this implementation passes (the version byte of every
#: domain-separation tag).
DRAFT_VERSION = 12
#: Report nonce size in bytes.
NONCE_SIZE = 16
#: Verification key size (shared by the aggregators, secret from clients).
VERIFY_KEY_SIZE = SEED_SIZE

USAGE_MEAS_SHARE = 1
USAGE_PROOF_SHARE = 2
USAGE_JOINT_RANDOMNESS = 3
USAGE_PROVE_RANDOMNESS = 4
USAGE_QUERY_RANDOMNESS = 5
USAGE_JOINT_RAND_SEED = 6
USAGE_JOINT_RAND_PART = 7


@dataclass(frozen=True)
class LeaderShare:
    """The leader's (aggregator 0) input share: explicit vectors and an optional blind."""

    meas_share: list[int]
    proofs_share: list[int]
    blind: bytes | None


@dataclass(frozen=True)
class HelperShare:
    """A helper's input share: one seed expanding to measurement and proof shares."""

    seed: bytes
    blind: bytes | None


InputShare = LeaderShare | HelperShare


@dataclass(frozen=True)
class PrepState:
    """What an aggregator keeps between ``prep_init`` and ``prep_next``."""

    out_share: list[int]
    corrected_joint_rand_seed: bytes | None


@dataclass(frozen=True)
class PrepShare:
    """What an aggregator sends during preparation: verifier share and joint-rand part."""

    verifiers_share: list[int]
    joint_rand_part: bytes | None


class Prio3(Generic[M, R]):
    """One Prio3 instantiation (algorithm id + validity circuit + number of shares)."""

    def __init__(
        self, algorithm_id: int, valid: Valid[M, R], shares: int = 2, version: int = DRAFT_VERSION
    ) -> None:
        if not 2 <= shares < 256:
            raise EncodingError("number of shares must be in [2, 256)")
        self.id = algorithm_id
        self.flp = FlpGeneric(valid)
        self.field = valid.field
        self.shares = shares
        self.version = version
        self.uses_joint_rand = self.flp.joint_rand_len > 0
        self.rand_size = shares * SEED_SIZE * (2 if self.uses_joint_rand else 1)

    # --- helpers (§7.2.x) ------------------------------------------------------------

    def dst(self, usage: int, ctx: bytes) -> bytes:
        """Domain-separation tag: version, class 0, algorithm id, usage, then ctx."""
        return (
            bytes([self.version, 0]) + self.id.to_bytes(4, "big") + usage.to_bytes(2, "big") + ctx
        )

    def helper_meas_share(self, ctx: bytes, agg_id: int, seed: bytes) -> list[int]:
        return expand_into_vec(
            self.field, seed, self.dst(USAGE_MEAS_SHARE, ctx), bytes([agg_id]), self.flp.meas_len
        )

    def helper_proofs_share(self, ctx: bytes, agg_id: int, seed: bytes) -> list[int]:
        return expand_into_vec(
            self.field,
            seed,
            self.dst(USAGE_PROOF_SHARE, ctx),
            bytes([1, agg_id]),
            self.flp.proof_len,
        )

    def prove_rands(self, ctx: bytes, seed: bytes) -> list[int]:
        return expand_into_vec(
            self.field,
            seed,
            self.dst(USAGE_PROVE_RANDOMNESS, ctx),
            bytes([1]),
            self.flp.prove_rand_len,
        )

    def query_rands(self, verify_key: bytes, ctx: bytes, nonce: bytes) -> list[int]:
        return expand_into_vec(
            self.field,
            verify_key,
            self.dst(USAGE_QUERY_RANDOMNESS, ctx),
            bytes([1]) + nonce,
            self.flp.query_rand_len,
        )

    def joint_rand_part(
        self, ctx: bytes, agg_id: int, blind: bytes, meas_share: list[int], nonce: bytes
    ) -> bytes:
        return derive_seed(
            blind,
            self.dst(USAGE_JOINT_RAND_PART, ctx),
            bytes([agg_id]) + nonce + self.field.encode_vec(meas_share),
        )

    def joint_rand_seed(self, ctx: bytes, parts: list[bytes]) -> bytes:
        return derive_seed(bytes(SEED_SIZE), self.dst(USAGE_JOINT_RAND_SEED, ctx), b"".join(parts))

    def joint_rands(self, ctx: bytes, seed: bytes) -> list[int]:
        return expand_into_vec(
            self.field,
            seed,
            self.dst(USAGE_JOINT_RANDOMNESS, ctx),
            bytes([1]),
            self.flp.joint_rand_len,
        )

    # --- client ----------------------------------------------------------------------

    def shard(
        self, ctx: bytes, measurement: M, nonce: bytes, rand: bytes
    ) -> tuple[list[bytes] | None, list[InputShare]]:
        """Split a measurement into a public share and one input share per aggregator."""
        if len(nonce) != NONCE_SIZE:
            raise EncodingError(f"nonce must be {NONCE_SIZE} bytes")
        if len(rand) != self.rand_size:
            raise EncodingError(f"rand must be {self.rand_size} bytes")
        seeds = [rand[i : i + SEED_SIZE] for i in range(0, len(rand), SEED_SIZE)]
        meas = self.flp.valid.encode(measurement)
        step = 2 if self.uses_joint_rand else 1
        helper_seeds = [seeds[i * step] for i in range(self.shares - 1)]
        helper_blinds = (
            [seeds[i * step + 1] for i in range(self.shares - 1)]
            if self.uses_joint_rand
            else [None] * (self.shares - 1)
        )
        rest = seeds[(self.shares - 1) * step :]
        leader_blind = rest[0] if self.uses_joint_rand else None
        k_prove = rest[-1]

        leader_meas = meas
        parts: list[bytes] = []
        for j, seed in enumerate(helper_seeds):
            helper_meas = self.helper_meas_share(ctx, j + 1, seed)
            leader_meas = self.field.vec_sub(leader_meas, helper_meas)
            blind = helper_blinds[j]
            if blind is not None:
                parts.append(self.joint_rand_part(ctx, j + 1, blind, helper_meas, nonce))
        joint_rand: list[int] = []
        public_share: list[bytes] | None = None
        if leader_blind is not None:
            parts.insert(0, self.joint_rand_part(ctx, 0, leader_blind, leader_meas, nonce))
            joint_rand = self.joint_rands(ctx, self.joint_rand_seed(ctx, parts))
            public_share = parts
        proof = self.flp.prove(meas, self.prove_rands(ctx, k_prove), joint_rand)
        leader_proof = proof
        for j, seed in enumerate(helper_seeds):
            leader_proof = self.field.vec_sub(
                leader_proof, self.helper_proofs_share(ctx, j + 1, seed)
            )
        shares: list[InputShare] = [LeaderShare(leader_meas, leader_proof, leader_blind)]
        shares += [HelperShare(s, b) for s, b in zip(helper_seeds, helper_blinds, strict=True)]
        return public_share, shares

    # --- aggregators -----------------------------------------------------------------

    def expand_input_share(
        self, ctx: bytes, agg_id: int, share: InputShare
    ) -> tuple[list[int], list[int], bytes | None]:
        """(measurement share, proof share, blind) of aggregator ``agg_id``."""
        if isinstance(share, HelperShare):
            if agg_id == 0:
                raise EncodingError("aggregator 0 holds the leader share")
            return (
                self.helper_meas_share(ctx, agg_id, share.seed),
                self.helper_proofs_share(ctx, agg_id, share.seed),
                share.blind,
            )
        if agg_id != 0:
            raise EncodingError("only aggregator 0 holds a leader share")
        return share.meas_share, share.proofs_share, share.blind

    def prep_init(
        self,
        verify_key: bytes,
        ctx: bytes,
        agg_id: int,
        nonce: bytes,
        public_share: list[bytes] | None,
        share: InputShare,
    ) -> tuple[PrepState, PrepShare]:
        """Query this aggregator's share: its prep state and its outbound prep share."""
        if len(verify_key) != VERIFY_KEY_SIZE or len(nonce) != NONCE_SIZE:
            raise EncodingError("bad verify key or nonce length")
        meas, proof, blind = self.expand_input_share(ctx, agg_id, share)
        out_share = self.flp.valid.truncate(meas)
        joint_rand: list[int] = []
        corrected: bytes | None = None
        part: bytes | None = None
        if self.uses_joint_rand:
            if blind is None or public_share is None or len(public_share) != self.shares:
                raise ReportRejectedError
            part = self.joint_rand_part(ctx, agg_id, blind, meas, nonce)
            parts = list(public_share)
            parts[agg_id] = part
            corrected = self.joint_rand_seed(ctx, parts)
            joint_rand = self.joint_rands(ctx, corrected)
        query_rand = self.query_rands(verify_key, ctx, nonce)
        verifiers = self.flp.query(meas, proof, query_rand, joint_rand, self.shares)
        return PrepState(out_share, corrected), PrepShare(verifiers, part)

    def prep_shares_to_prep(self, ctx: bytes, prep_shares: list[PrepShare]) -> bytes | None:
        """Combine all prep shares; raises ReportRejectedError if the proof rejects."""
        if len(prep_shares) != self.shares:
            raise ReportRejectedError
        verifier = [0] * self.flp.verifier_len
        for ps in prep_shares:
            if len(ps.verifiers_share) != self.flp.verifier_len:
                raise ReportRejectedError
            verifier = self.field.vec_add(verifier, ps.verifiers_share)
        if not self.flp.decide(verifier):
            raise ReportRejectedError
        if not self.uses_joint_rand:
            return None
        parts = [ps.joint_rand_part for ps in prep_shares]
        if any(p is None for p in parts):
            raise ReportRejectedError
        return self.joint_rand_seed(ctx, [p for p in parts if p is not None])

    def prep_next(self, state: PrepState, prep_msg: bytes | None) -> list[int]:
        """The output share, if the client's joint randomness was honest."""
        if prep_msg != state.corrected_joint_rand_seed:
            raise ReportRejectedError
        return state.out_share

    def aggregate(self, out_shares: list[list[int]]) -> list[int]:
        """Sum of output shares (column by column, one reduction per column)."""
        return self._sum(out_shares)

    def unshard(self, agg_shares: list[list[int]], num_measurements: int) -> R:
        """The aggregate result from every aggregator's aggregate share."""
        return self.flp.valid.decode(self._sum(agg_shares), num_measurements)

    def _sum(self, vectors: list[list[int]]) -> list[int]:
        length = self.flp.output_len
        if any(len(v) != length for v in vectors):
            raise EncodingError("mismatched vector lengths")
        if not vectors:
            return [0] * length
        q = self.field.modulus
        return [sum(column) % q for column in zip(*vectors, strict=True)]

    # --- wire encodings (§7.2.6) -----------------------------------------------------

    def encode_input_share(self, share: InputShare) -> bytes:
        blind = share.blind or b""
        if isinstance(share, LeaderShare):
            return (
                self.field.encode_vec(share.meas_share)
                + self.field.encode_vec(share.proofs_share)
                + blind
            )
        return share.seed + blind

    def decode_input_share(self, agg_id: int, data: bytes) -> InputShare:
        """Parse an input share; refuses any wrong length (EncodingError)."""
        blind_len = SEED_SIZE if self.uses_joint_rand else 0
        if agg_id == 0:
            size = self.field.encoded_size
            n_meas, n_proof = self.flp.meas_len, self.flp.proof_len
            if len(data) != (n_meas + n_proof) * size + blind_len:
                raise EncodingError("leader input share has the wrong length")
            vec = self.field.decode_vec(data[: (n_meas + n_proof) * size])
            blind = data[(n_meas + n_proof) * size :] or None
            return LeaderShare(vec[:n_meas], vec[n_meas:], blind)
        if len(data) != SEED_SIZE + blind_len:
            raise EncodingError("helper input share has the wrong length")
        return HelperShare(data[:SEED_SIZE], data[SEED_SIZE:] or None)

    def encode_public_share(self, public_share: list[bytes] | None) -> bytes:
        return b"".join(public_share or [])

    def decode_public_share(self, data: bytes) -> list[bytes] | None:
        if not self.uses_joint_rand:
            if data:
                raise EncodingError("public share must be empty")
            return None
        if len(data) != self.shares * SEED_SIZE:
            raise EncodingError("public share has the wrong length")
        return [data[i : i + SEED_SIZE] for i in range(0, len(data), SEED_SIZE)]

    def encode_prep_share(self, ps: PrepShare) -> bytes:
        return self.field.encode_vec(ps.verifiers_share) + (ps.joint_rand_part or b"")

    def decode_prep_share(self, data: bytes) -> PrepShare:
        size = self.flp.verifier_len * self.field.encoded_size
        jr = SEED_SIZE if self.uses_joint_rand else 0
        if len(data) != size + jr:
            raise EncodingError("prep share has the wrong length")
        return PrepShare(self.field.decode_vec(data[:size]), data[size:] or None)

    def encode_agg_share(self, agg_share: list[int]) -> bytes:
        return self.field.encode_vec(agg_share)

    def decode_agg_share(self, data: bytes) -> list[int]:
        vec = self.field.decode_vec(data)
        if len(vec) != self.flp.output_len:
            raise EncodingError("aggregate share has the wrong length")
        return vec


def prio3_count(shares: int = 2) -> Prio3[int, int]:
    """Prio3Count: Field64, algorithm id 1."""
    return Prio3(0x00000001, Count(FIELD64), shares)


def prio3_sum(max_measurement: int, shares: int = 2) -> Prio3[int, int]:
    """Prio3Sum: Field64, algorithm id 2, measurements in ``[0, max_measurement]``."""
    return Prio3(0x00000002, Sum(FIELD64, max_measurement=max_measurement), shares)


def prio3_histogram(length: int, chunk_length: int, shares: int = 2) -> Prio3[int, list[int]]:
    """Prio3Histogram: Field128, algorithm id 4, one bucket out of ``length``."""
    return Prio3(0x00000004, Histogram(FIELD128, length=length, chunk_length=chunk_length), shares)
