"""Keccak-p[1600, n_r] and TurboSHAKE128, scalar and batched (SPEC AGG-2).

TurboSHAKE128 (RFC 9861, as used by draft-irtf-cfrg-vdaf) is the sponge over
Keccak-p[1600, 12] — the last 12 of Keccak-f[1600]'s 24 rounds — with rate 168 bytes,
a domain-separation byte ``D`` appended to the message, then pad10*1. Python's
``hashlib`` has SHAKE128 (24 rounds, ``D = 0x1F``) but no TurboSHAKE, so the
permutation is implemented here twice: once on Python integers for single messages and
once with numpy over a batch of equal-length messages (lanes of many reports side by
side), which is what makes preparing a day of reports fast. Both are checked against
``hashlib.shake_128`` by running all 24 rounds.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "RATE",
    "TurboShake128",
    "keccak_p1600",
    "keccak_p1600_batch",
    "turboshake128",
    "turboshake128_batch",
    "turboshake128_many",
]

#: Sponge rate of TurboSHAKE128 / SHAKE128 in bytes (capacity 256 bits).
RATE = 168
_MASK = (1 << 64) - 1


def _round_constants() -> list[int]:
    """The 24 round constants of Keccak-f[1600], from the rc(t) LFSR of FIPS 202 §3.2.5."""
    out = []
    r = 1
    bits = []
    for _ in range(255):
        bits.append(r & 1)
        r <<= 1
        if r & 0x100:
            r ^= 0x171
    for ir in range(24):
        rc = 0
        for j in range(7):
            if bits[(j + 7 * ir) % 255]:
                rc |= 1 << ((1 << j) - 1)
        out.append(rc)
    return out


def _rotation_offsets() -> list[int]:
    """ρ offsets per lane index ``x + 5y`` (FIPS 202 §3.2.2)."""
    offsets = [0] * 25
    x, y = 1, 0
    for t in range(24):
        offsets[x + 5 * y] = ((t + 1) * (t + 2) // 2) % 64
        x, y = y, (2 * x + 3 * y) % 5
    return offsets


_RC = _round_constants()
_ROT = _rotation_offsets()
#: π: lane at index i moves to index _PI[i].
_PI = [0] * 25
for _x in range(5):
    for _y in range(5):
        _PI[_x + 5 * _y] = _y + 5 * ((2 * _x + 3 * _y) % 5)


def keccak_p1600(lanes: list[int], rounds: int = 12) -> list[int]:
    """Apply the last ``rounds`` rounds of Keccak-f[1600] to 25 64-bit lanes (unrolled)."""
    m = _MASK
    (
        a0,
        a1,
        a2,
        a3,
        a4,
        a5,
        a6,
        a7,
        a8,
        a9,
        a10,
        a11,
        a12,
        a13,
        a14,
        a15,
        a16,
        a17,
        a18,
        a19,
        a20,
        a21,
        a22,
        a23,
        a24,
    ) = lanes
    for rc in _RC[24 - rounds :]:
        c0 = a0 ^ a5 ^ a10 ^ a15 ^ a20
        c1 = a1 ^ a6 ^ a11 ^ a16 ^ a21
        c2 = a2 ^ a7 ^ a12 ^ a17 ^ a22
        c3 = a3 ^ a8 ^ a13 ^ a18 ^ a23
        c4 = a4 ^ a9 ^ a14 ^ a19 ^ a24
        d0 = c4 ^ (((c1 << 1) | (c1 >> 63)) & m)
        d1 = c0 ^ (((c2 << 1) | (c2 >> 63)) & m)
        d2 = c1 ^ (((c3 << 1) | (c3 >> 63)) & m)
        d3 = c2 ^ (((c4 << 1) | (c4 >> 63)) & m)
        d4 = c3 ^ (((c0 << 1) | (c0 >> 63)) & m)
        b0 = a0 ^ d0
        t = a1 ^ d1
        b10 = ((t << 1) | (t >> 63)) & m
        t = a2 ^ d2
        b20 = ((t << 62) | (t >> 2)) & m
        t = a3 ^ d3
        b5 = ((t << 28) | (t >> 36)) & m
        t = a4 ^ d4
        b15 = ((t << 27) | (t >> 37)) & m
        t = a5 ^ d0
        b16 = ((t << 36) | (t >> 28)) & m
        t = a6 ^ d1
        b1 = ((t << 44) | (t >> 20)) & m
        t = a7 ^ d2
        b11 = ((t << 6) | (t >> 58)) & m
        t = a8 ^ d3
        b21 = ((t << 55) | (t >> 9)) & m
        t = a9 ^ d4
        b6 = ((t << 20) | (t >> 44)) & m
        t = a10 ^ d0
        b7 = ((t << 3) | (t >> 61)) & m
        t = a11 ^ d1
        b17 = ((t << 10) | (t >> 54)) & m
        t = a12 ^ d2
        b2 = ((t << 43) | (t >> 21)) & m
        t = a13 ^ d3
        b12 = ((t << 25) | (t >> 39)) & m
        t = a14 ^ d4
        b22 = ((t << 39) | (t >> 25)) & m
        t = a15 ^ d0
        b23 = ((t << 41) | (t >> 23)) & m
        t = a16 ^ d1
        b8 = ((t << 45) | (t >> 19)) & m
        t = a17 ^ d2
        b18 = ((t << 15) | (t >> 49)) & m
        t = a18 ^ d3
        b3 = ((t << 21) | (t >> 43)) & m
        t = a19 ^ d4
        b13 = ((t << 8) | (t >> 56)) & m
        t = a20 ^ d0
        b14 = ((t << 18) | (t >> 46)) & m
        t = a21 ^ d1
        b24 = ((t << 2) | (t >> 62)) & m
        t = a22 ^ d2
        b9 = ((t << 61) | (t >> 3)) & m
        t = a23 ^ d3
        b19 = ((t << 56) | (t >> 8)) & m
        t = a24 ^ d4
        b4 = ((t << 14) | (t >> 50)) & m
        a0 = b0 ^ ((b1 ^ m) & b2)
        a1 = b1 ^ ((b2 ^ m) & b3)
        a2 = b2 ^ ((b3 ^ m) & b4)
        a3 = b3 ^ ((b4 ^ m) & b0)
        a4 = b4 ^ ((b0 ^ m) & b1)
        a5 = b5 ^ ((b6 ^ m) & b7)
        a6 = b6 ^ ((b7 ^ m) & b8)
        a7 = b7 ^ ((b8 ^ m) & b9)
        a8 = b8 ^ ((b9 ^ m) & b5)
        a9 = b9 ^ ((b5 ^ m) & b6)
        a10 = b10 ^ ((b11 ^ m) & b12)
        a11 = b11 ^ ((b12 ^ m) & b13)
        a12 = b12 ^ ((b13 ^ m) & b14)
        a13 = b13 ^ ((b14 ^ m) & b10)
        a14 = b14 ^ ((b10 ^ m) & b11)
        a15 = b15 ^ ((b16 ^ m) & b17)
        a16 = b16 ^ ((b17 ^ m) & b18)
        a17 = b17 ^ ((b18 ^ m) & b19)
        a18 = b18 ^ ((b19 ^ m) & b15)
        a19 = b19 ^ ((b15 ^ m) & b16)
        a20 = b20 ^ ((b21 ^ m) & b22)
        a21 = b21 ^ ((b22 ^ m) & b23)
        a22 = b22 ^ ((b23 ^ m) & b24)
        a23 = b23 ^ ((b24 ^ m) & b20)
        a24 = b24 ^ ((b20 ^ m) & b21)
        a0 ^= rc
    return [
        a0,
        a1,
        a2,
        a3,
        a4,
        a5,
        a6,
        a7,
        a8,
        a9,
        a10,
        a11,
        a12,
        a13,
        a14,
        a15,
        a16,
        a17,
        a18,
        a19,
        a20,
        a21,
        a22,
        a23,
        a24,
    ]


def _pad(message: bytes, domain: int) -> bytes:
    padded = bytearray(message)
    padded.append(domain)
    padded.extend(bytes((-len(padded)) % RATE))
    padded[-1] ^= 0x80
    return bytes(padded)


class TurboShake128:
    """An absorbed TurboSHAKE128 instance that squeezes output incrementally."""

    def __init__(self, message: bytes, domain: int = 0x1F, rounds: int = 12) -> None:
        if not 0x01 <= domain <= 0x7F:
            raise ValueError("domain separation byte must be in [0x01, 0x7f]")
        self._rounds = rounds
        state = [0] * 25
        padded = _pad(message, domain)
        for off in range(0, len(padded), RATE):
            block = padded[off : off + RATE]
            for i in range(RATE // 8):
                state[i] ^= int.from_bytes(block[8 * i : 8 * i + 8], "little")
            state = keccak_p1600(state, rounds)
        self._state = state
        self._buffer = self._block()

    def _block(self) -> bytes:
        return b"".join(v.to_bytes(8, "little") for v in self._state[: RATE // 8])

    def read(self, length: int) -> bytes:
        """Squeeze the next ``length`` bytes."""
        out = bytearray()
        while len(out) < length:
            if not self._buffer:
                self._state = keccak_p1600(self._state, self._rounds)
                self._buffer = self._block()
            take = min(length - len(out), len(self._buffer))
            out += self._buffer[:take]
            self._buffer = self._buffer[take:]
        return bytes(out)


def turboshake128(message: bytes, domain: int, length: int, rounds: int = 12) -> bytes:
    """TurboSHAKE128(M, D, L); with ``rounds=24, domain=0x1F`` it is SHAKE128."""
    return TurboShake128(message, domain, rounds).read(length)


# --- batched (numpy) -----------------------------------------------------------------

_U64 = np.uint64
#: ρ and π fused: ``b = a[_PI_SRC]`` puts each lane where π sends it, then lane j of b is
#: rotated by the offset of the lane it came from.
_PI_SRC = [0] * 25
for _i in range(25):
    _PI_SRC[_PI[_i]] = _i
_RHO_LEFT = np.array([_ROT[i] for i in _PI_SRC], dtype=np.uint64)[:, None]
_RHO_RIGHT = np.uint64(64) - _RHO_LEFT  # a shift by 64 gives 0 in numpy
_RC_ARRAY = np.array(_RC, dtype=np.uint64)
_NEXT = [1, 2, 3, 4, 0]
_NEXT2 = [2, 3, 4, 0, 1]
_PREV = [4, 0, 1, 2, 3]
#: States per numpy pass: keeps the working arrays in cache for large batches.
_COLUMNS = 2048


def keccak_p1600_batch(a: npt.NDArray[np.uint64], rounds: int = 12) -> npt.NDArray[np.uint64]:
    """The permutation on a ``(25, N)`` array of lanes: N independent states at once.

    Lane ``x + 5y`` is row ``x + 5y``; each step works on whole rows (θ on the five
    columns' parities, ρ∘π as one gather and two shifts, χ on the five rows), about
    twenty numpy operations per round whatever N is.
    """
    n = a.shape[1]
    if n > _COLUMNS:
        return np.concatenate(
            [keccak_p1600_batch(a[:, i : i + _COLUMNS], rounds) for i in range(0, n, _COLUMNS)],
            axis=1,
        )
    a = np.array(a, dtype=np.uint64, copy=True, order="C")
    a5 = a.reshape(5, 5, n)
    t = np.empty((25, n), dtype=np.uint64)
    u = np.empty((25, n), dtype=np.uint64)
    t5 = t.reshape(5, 5, n)
    one, s63 = _U64(1), _U64(63)
    for ir in range(24 - rounds, 24):
        c = np.bitwise_xor.reduce(a5, axis=0)
        c1 = c[_NEXT]
        a5 ^= c[_PREV] ^ ((c1 << one) | (c1 >> s63))
        b = a[_PI_SRC]
        np.left_shift(b, _RHO_LEFT, out=t)
        np.right_shift(b, _RHO_RIGHT, out=u)
        np.bitwise_or(t, u, out=b)
        b5 = b.reshape(5, 5, n)
        np.invert(b5[:, _NEXT], out=t5)
        np.bitwise_and(t5, b5[:, _NEXT2], out=t5)
        np.bitwise_xor(b, t, out=a)
        a[0] ^= _RC_ARRAY[ir]
    return a


def _padded_blocks(msg_len: int) -> int:
    return (msg_len + 1 + RATE - 1) // RATE


def turboshake128_batch(
    messages: npt.NDArray[np.uint8], domain: int, length: int, rounds: int = 12
) -> npt.NDArray[np.uint8]:
    """TurboSHAKE128 of N equal-length messages, given as an ``(N, L)`` uint8 array.

    Returns an ``(N, length)`` uint8 array; row i equals ``turboshake128(messages[i], ...)``.
    """
    n, msg_len = messages.shape
    padded_len = _padded_blocks(msg_len) * RATE
    padded = np.zeros((n, padded_len), dtype=np.uint8)
    padded[:, :msg_len] = messages
    padded[:, msg_len] = domain
    padded[:, -1] ^= 0x80
    return _sponge(padded, length, rounds)


def _sponge(padded: npt.NDArray[np.uint8], length: int, rounds: int) -> npt.NDArray[np.uint8]:
    """Absorb N padded messages of equal block count, squeeze ``length`` bytes each."""
    n, padded_len = padded.shape
    state = np.zeros((25, n), dtype=np.uint64)
    for off in range(0, padded_len, RATE):
        block = np.ascontiguousarray(padded[:, off : off + RATE]).view("<u8")  # (n, 21)
        state[:21] ^= block.T
        state = keccak_p1600_batch(state, rounds)
    blocks = max(1, -(-length // RATE))
    out = np.empty((n, blocks * RATE), dtype=np.uint8)
    for k in range(blocks):
        if k:
            state = keccak_p1600_batch(state, rounds)
        lanes = out[:, k * RATE : (k + 1) * RATE].view("<u8")
        lanes[:] = state[:21].T
    return np.ascontiguousarray(out[:, :length])


def turboshake128_many(
    messages: list[bytes], domain: int, lengths: list[int], rounds: int = 12
) -> list[bytes]:
    """TurboSHAKE128 of messages of any lengths; item i is ``lengths[i]`` bytes.

    Messages that pad to the same number of blocks run together through the batched
    sponge (each row padded on its own); a group too small for numpy to pay off runs on
    the scalar path. Same output as one :func:`turboshake128` call per message.
    """
    groups: dict[int, list[int]] = {}
    for i, msg in enumerate(messages):
        groups.setdefault(_padded_blocks(len(msg)), []).append(i)
    out: list[bytes] = [b""] * len(messages)
    for blocks, idx in groups.items():
        if len(idx) < _MIN_BATCH:
            for i in idx:
                out[i] = turboshake128(messages[i], domain, lengths[i], rounds)
            continue
        padded = np.zeros((len(idx), blocks * RATE), dtype=np.uint8)
        for row, i in enumerate(idx):
            msg = messages[i]
            padded[row, : len(msg)] = np.frombuffer(msg, dtype=np.uint8)
            padded[row, len(msg)] = domain
        padded[:, -1] ^= 0x80
        longest = max(lengths[i] for i in idx)
        data = _sponge(padded, longest, rounds)
        raw = data.tobytes()
        for row, i in enumerate(idx):
            base = row * longest
            out[i] = raw[base : base + lengths[i]]
    return out


#: Below this many messages of one block count the scalar sponge is faster.
_MIN_BATCH = 4
