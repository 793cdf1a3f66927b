"""The generic FLP of draft-irtf-cfrg-vdaf §7.3 ("FlpBBCGGI19") and its validity circuits.

A validity circuit evaluates the encoded measurement through *gadgets* (Mul, PolyEval,
ParallelSum). The prover records every gadget input ("wires"), interpolates each wire
over the p-th roots of unity (slot 0 holds a random wire seed), and sends the seeds and
the gadget polynomial ``G(W_1(x), …)``. A verifier holding a *share* of measurement and
proof re-runs the circuit with gadget outputs taken from the gadget polynomial at α^k,
and evaluates the wire and gadget polynomials at a random point t. Summed over the
shares, the verifier message lets ``decide`` check the circuit output is zero and the
gadget polynomial is consistent with the wires (SPEC AGG-4).

Circuits (§7.4): Count (``x² − x``), Sum (bit decomposition of the value and of the value
plus an offset, so exactly ``[0, max_measurement]`` is accepted), Histogram (one-hot:
every entry a bit, entries sum to one; uses joint randomness).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from operator import mul
from typing import Generic, Protocol, TypeVar

from .errors import EncodingError, ReportRejectedError
from .field import Field, lagrange_at, next_power_of_2, root_powers

__all__ = [
    "Count",
    "FlpGeneric",
    "Gadget",
    "Histogram",
    "Mul",
    "ParallelSum",
    "PolyEval",
    "Sum",
    "Valid",
]

M = TypeVar("M")
R = TypeVar("R")
GadgetCall = Callable[[int, list[int]], int]


class Gadget(Protocol):
    """A non-affine sub-circuit (§7.3.2)."""

    @property
    def arity(self) -> int: ...

    @property
    def degree(self) -> int: ...

    def eval(self, f: Field, inp: list[int]) -> int: ...

    def eval_poly(self, f: Field, polys: list[list[int]]) -> list[int]: ...


@dataclass(frozen=True)
class Mul:
    """``x · y``."""

    arity: int = 2
    degree: int = 2

    def eval(self, f: Field, inp: list[int]) -> int:
        return inp[0] * inp[1] % f.modulus

    def eval_poly(self, f: Field, polys: list[list[int]]) -> list[int]:
        return f.poly_mul(polys[0], polys[1])


@dataclass(frozen=True)
class PolyEval:
    """Evaluation of a fixed univariate polynomial (coefficients low to high)."""

    coeffs: tuple[int, ...]
    arity: int = 1

    @property
    def degree(self) -> int:
        return len(self.coeffs) - 1

    def eval(self, f: Field, inp: list[int]) -> int:
        return f.poly_eval([c % f.modulus for c in self.coeffs], inp[0])

    def eval_poly(self, f: Field, polys: list[list[int]]) -> list[int]:
        q = f.modulus
        out = [0] * (self.degree * (len(polys[0]) - 1) + 1)
        power = [1]
        for c in self.coeffs:
            c %= q
            for i, x in enumerate(power):
                out[i] = (out[i] + c * x) % q
            power = f.poly_mul(power, polys[0])
        return out


@dataclass(frozen=True)
class ParallelSum:
    """Σ of ``count`` copies of a sub-gadget over consecutive input slices."""

    sub: Mul
    count: int

    @property
    def arity(self) -> int:
        return self.sub.arity * self.count

    @property
    def degree(self) -> int:
        return self.sub.degree

    def eval(self, f: Field, inp: list[int]) -> int:
        a = self.sub.arity
        return (
            sum(self.sub.eval(f, inp[i * a : (i + 1) * a]) for i in range(self.count)) % f.modulus
        )

    def eval_poly(self, f: Field, polys: list[list[int]]) -> list[int]:
        a = self.sub.arity
        q = f.modulus
        out = [0] * (self.degree * (len(polys[0]) - 1) + 1)
        for i in range(self.count):
            part = self.sub.eval_poly(f, polys[i * a : (i + 1) * a])
            for j, c in enumerate(part):
                out[j] += c
        return [c % q for c in out]


@dataclass
class Valid(Generic[M, R]):
    """A validity circuit with its encoding (§7.3.2). Subclasses fill the fields."""

    field: Field
    meas_len: int = 0
    joint_rand_len: int = 0
    output_len: int = 0
    eval_output_len: int = 1
    gadgets: list[Gadget] = dc_field(default_factory=list)
    gadget_calls: list[int] = dc_field(default_factory=list)

    def encode(self, measurement: M) -> list[int]:
        raise NotImplementedError

    def truncate(self, meas: list[int]) -> list[int]:
        return meas

    def decode(self, output: list[int], num_measurements: int) -> R:
        raise NotImplementedError

    def eval(
        self, meas: list[int], joint_rand: list[int], num_shares: int, call: GadgetCall
    ) -> list[int]:
        raise NotImplementedError


@dataclass
class Count(Valid[int, int]):
    """Prio3Count's circuit: the measurement is 0 or 1."""

    def __post_init__(self) -> None:
        self.meas_len, self.output_len, self.eval_output_len = 1, 1, 1
        self.gadgets, self.gadget_calls = [Mul()], [1]

    def encode(self, measurement: int) -> list[int]:
        if measurement not in (0, 1):
            raise EncodingError("count measurement must be 0 or 1")
        return [measurement]

    def decode(self, output: list[int], num_measurements: int) -> int:
        return output[0]

    def eval(
        self, meas: list[int], joint_rand: list[int], num_shares: int, call: GadgetCall
    ) -> list[int]:
        return [(call(0, [meas[0], meas[0]]) - meas[0]) % self.field.modulus]


@dataclass
class Sum(Valid[int, int]):
    """Prio3Sum's circuit: the measurement is an integer in ``[0, max_measurement]``."""

    max_measurement: int = 1

    def __post_init__(self) -> None:
        if self.max_measurement < 1:
            raise EncodingError("max_measurement must be at least 1")
        self.bits = self.max_measurement.bit_length()
        self.offset = 2**self.bits - 1 - self.max_measurement
        self.meas_len = 2 * self.bits
        self.output_len = 1
        self.eval_output_len = 2 * self.bits + 1
        self.gadgets = [PolyEval((0, -1, 1))]
        self.gadget_calls = [2 * self.bits]

    def encode(self, measurement: int) -> list[int]:
        if not 0 <= measurement <= self.max_measurement:
            raise EncodingError(f"sum measurement must be in [0, {self.max_measurement}]")
        v, w = measurement, measurement + self.offset
        return [(v >> i) & 1 for i in range(self.bits)] + [(w >> i) & 1 for i in range(self.bits)]

    def truncate(self, meas: list[int]) -> list[int]:
        return [self.field.decode_bits(meas[: self.bits])]

    def decode(self, output: list[int], num_measurements: int) -> int:
        return output[0]

    def eval(
        self, meas: list[int], joint_rand: list[int], num_shares: int, call: GadgetCall
    ) -> list[int]:
        f = self.field
        q = f.modulus
        out = [call(0, [b]) for b in meas]
        shares_inv = f.inv(num_shares)
        check = (
            self.offset * shares_inv
            + f.decode_bits(meas[: self.bits])
            - f.decode_bits(meas[self.bits :])
        ) % q
        return [*out, check]


@dataclass
class Histogram(Valid[int, list[int]]):
    """Prio3Histogram's circuit: a one-hot vector of ``length`` buckets."""

    length: int = 1
    chunk_length: int = 1

    def __post_init__(self) -> None:
        if self.length < 1 or self.chunk_length < 1:
            raise EncodingError("histogram length and chunk_length must be positive")
        self.meas_len = self.output_len = self.length
        self.eval_output_len = 2
        self.gadgets = [ParallelSum(Mul(), self.chunk_length)]
        calls = (self.length + self.chunk_length - 1) // self.chunk_length
        self.gadget_calls = [calls]
        self.joint_rand_len = calls

    def encode(self, measurement: int) -> list[int]:
        if not 0 <= measurement < self.length:
            raise EncodingError(f"histogram bucket must be in [0, {self.length})")
        out = [0] * self.length
        out[measurement] = 1
        return out

    def decode(self, output: list[int], num_measurements: int) -> list[int]:
        return list(output)

    def eval(
        self, meas: list[int], joint_rand: list[int], num_shares: int, call: GadgetCall
    ) -> list[int]:
        q = self.field.modulus
        shares_inv = _inverse(self.field, num_shares)
        chunk = self.chunk_length
        calls = self.gadget_calls[0]
        padded = meas + [0] * (calls * chunk - len(meas))  # entries past the end are 0
        range_check = 0
        for i in range(calls):
            r = r_power = joint_rand[i]
            inputs = []
            for x in padded[i * chunk : (i + 1) * chunk]:
                # Left unreduced: gadget inputs only ever enter products and sums that are
                # reduced mod q (the same field elements, one reduction later).
                inputs.append(r_power * x)
                inputs.append(x - shares_inv)
                r_power = r_power * r % q
            range_check += call(0, inputs)
        sum_check = (sum(meas) - shares_inv) % q
        return [range_check % q, sum_check]


_INVERSES: dict[tuple[int, int], int] = {}


def _inverse(field: Field, x: int) -> int:
    """``x⁻¹`` in ``field`` for a small constant x such as the number of shares (cached)."""
    key = (field.modulus, x)
    if key not in _INVERSES:
        _INVERSES[key] = field.inv(x)
    return _INVERSES[key]


class FlpGeneric(Generic[M, R]):
    """Prove / query / decide for one validity circuit (§7.3.3)."""

    def __init__(self, valid: Valid[M, R]) -> None:
        self.valid = valid
        self.field = valid.field
        self.p = [next_power_of_2(1 + c) for c in valid.gadget_calls]
        self.prove_rand_len = sum(g.arity for g in valid.gadgets)
        self.query_rand_len = len(valid.gadgets) + (
            valid.eval_output_len if valid.eval_output_len > 1 else 0
        )
        self.proof_len = sum(
            g.arity + g.degree * (p - 1) + 1 for g, p in zip(valid.gadgets, self.p, strict=True)
        )
        self.verifier_len = 1 + sum(g.arity + 1 for g in valid.gadgets)
        self.meas_len = valid.meas_len
        self.joint_rand_len = valid.joint_rand_len
        self.output_len = valid.output_len
        #: Per gadget: (arity, length of its gadget polynomial) — how a proof is laid out.
        self._layout = [
            (g.arity, g.degree * (p - 1) + 1) for g, p in zip(valid.gadgets, self.p, strict=True)
        ]
        #: Per gadget, row k holds ``α^(k·j)`` for each coefficient j of the gadget
        #: polynomial: its value at the k-th root of unity is one dot product.
        self._eval_rows = [
            [
                [pow(alpha_k, j, self.field.modulus) for j in range(g.degree * (p - 1) + 1)]
                for alpha_k in root_powers(self.field, p)
            ]
            for g, p in zip(valid.gadgets, self.p, strict=True)
        ]

    def _new_wires(self, seeds: list[int]) -> list[list[list[int]]]:
        wires = []
        for g, p in zip(self.valid.gadgets, self.p, strict=True):
            s, seeds = seeds[: g.arity], seeds[g.arity :]
            wires.append([[seed] + [0] * (p - 1) for seed in s])
        return wires

    def prove(self, meas: list[int], prove_rand: list[int], joint_rand: list[int]) -> list[int]:
        """The proof that ``meas`` is valid."""
        f = self.field
        wires = self._new_wires(prove_rand)
        counters = [0] * len(wires)
        gadgets = self.valid.gadgets

        def call(i: int, inp: list[int]) -> int:
            counters[i] += 1
            for j, x in enumerate(inp):
                wires[i][j][counters[i]] = x
            return gadgets[i].eval(f, inp)

        self.valid.eval(meas, joint_rand, 1, call)
        proof: list[int] = []
        for g, p, w in zip(gadgets, self.p, wires, strict=True):
            polys = [f.interp_roots(wire) for wire in w]
            gadget_poly = g.eval_poly(f, polys)
            size = g.degree * (p - 1) + 1
            gadget_poly = (gadget_poly + [0] * size)[:size]
            proof += [wire[0] for wire in w] + gadget_poly
        return proof

    def query(
        self,
        meas: list[int],
        proof: list[int],
        query_rand: list[int],
        joint_rand: list[int],
        num_shares: int,
    ) -> list[int]:
        """This share's verifier message; raises ReportRejectedError if t is a root of unity."""
        f = self.field
        q = f.modulus
        gadgets = self.valid.gadgets
        polys: list[list[int]] = []
        seeds: list[int] = []
        at = 0
        for arity, size in self._layout:
            seeds += proof[at : at + arity]
            polys.append(proof[at + arity : at + arity + size])
            at += arity + size
        calls: list[list[list[int]]] = [[] for _ in gadgets]
        rows = self._eval_rows

        def call(i: int, inp: list[int]) -> int:
            made = calls[i]
            made.append(inp)
            value: int = sum(map(mul, polys[i], rows[i][len(made)])) % q
            return value

        out = self.valid.eval(meas, joint_rand, num_shares, call)
        if self.valid.eval_output_len > 1:
            rand, query_rand = query_rand[: len(out)], query_rand[len(out) :]
            v = sum(r * o for r, o in zip(rand, out, strict=True)) % q
        else:
            v = out[0]
        verifier = [v]
        at = 0
        for i, ((arity, _), p, t) in enumerate(zip(self._layout, self.p, query_rand, strict=True)):
            t_p = pow(t, p, q)
            if t_p == 1:
                raise ReportRejectedError
            # Wire j holds the seed at α^0, the j-th input of call k at α^k, then zeros.
            basis = lagrange_at(f, p, t, t_p, count=len(calls[i]) + 1)
            l0, lk = basis[0], basis[1:]
            columns = zip(*calls[i], strict=True) if calls[i] else ([] for _ in range(arity))
            for seed, column in zip(seeds[at : at + arity], columns, strict=True):
                verifier.append((seed * l0 + sum(map(mul, column, lk))) % q)
            at += arity
            verifier.append(f.poly_eval(polys[i], t))
        return verifier

    def decide(self, verifier: list[int]) -> bool:
        """True iff the summed verifier message accepts."""
        if len(verifier) != self.verifier_len or verifier[0] != 0:
            return False
        rest = verifier[1:]
        for g in self.valid.gadgets:
            checks, rest = rest[: g.arity], rest[g.arity :]
            if g.eval(self.field, checks) != rest[0]:
                return False
            rest = rest[1:]
        return True
