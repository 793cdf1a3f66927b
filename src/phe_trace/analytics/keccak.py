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
        a0 = b0 ^ (~b1 & b2)
        a1 = b1 ^ (~b2 & b3)
        a2 = b2 ^ (~b3 & b4)
        a3 = b3 ^ (~b4 & b0)
        a4 = b4 ^ (~b0 & b1)
        a5 = b5 ^ (~b6 & b7)
        a6 = b6 ^ (~b7 & b8)
        a7 = b7 ^ (~b8 & b9)
        a8 = b8 ^ (~b9 & b5)
        a9 = b9 ^ (~b5 & b6)
        a10 = b10 ^ (~b11 & b12)
        a11 = b11 ^ (~b12 & b13)
        a12 = b12 ^ (~b13 & b14)
        a13 = b13 ^ (~b14 & b10)
        a14 = b14 ^ (~b10 & b11)
        a15 = b15 ^ (~b16 & b17)
        a16 = b16 ^ (~b17 & b18)
        a17 = b17 ^ (~b18 & b19)
        a18 = b18 ^ (~b19 & b15)
        a19 = b19 ^ (~b15 & b16)
        a20 = b20 ^ (~b21 & b22)
        a21 = b21 ^ (~b22 & b23)
        a22 = b22 ^ (~b23 & b24)
        a23 = b23 ^ (~b24 & b20)
        a24 = b24 ^ (~b20 & b21)
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
_RC_NP = [_U64(rc) for rc in _RC]
_ROT_NP = [(_U64(r), _U64(64 - r)) for r in _ROT]


def keccak_p1600_batch(a: npt.NDArray[np.uint64], rounds: int = 12) -> npt.NDArray[np.uint64]:
    """The permutation on a ``(25, N)`` array of lanes: N independent states at once."""
    a = a.copy()
    b = np.empty_like(a)
    for ir in range(24 - rounds, 24):
        c = a[0:5] ^ a[5:10] ^ a[10:15] ^ a[15:20] ^ a[20:25]
        c_rot = (c << _U64(1)) | (c >> _U64(63))
        d = np.roll(c, 1, axis=0) ^ np.roll(c_rot, -1, axis=0)
        a ^= np.tile(d, (5, 1))
        for i in range(25):
            r = _ROT[i]
            if r:
                left, right = _ROT_NP[i]
                b[_PI[i]] = (a[i] << left) | (a[i] >> right)
            else:
                b[_PI[i]] = a[i]
        for y in range(0, 25, 5):
            row = b[y : y + 5]
            a[y : y + 5] = row ^ (~np.roll(row, -1, axis=0) & np.roll(row, -2, axis=0))
        a[0] ^= _RC_NP[ir]
    return a


def turboshake128_batch(
    messages: npt.NDArray[np.uint8], domain: int, length: int, rounds: int = 12
) -> npt.NDArray[np.uint8]:
    """TurboSHAKE128 of N equal-length messages, given as an ``(N, L)`` uint8 array.

    Returns an ``(N, length)`` uint8 array; row i equals ``turboshake128(messages[i], ...)``.
    """
    n, msg_len = messages.shape
    padded_len = msg_len + 1 + ((-(msg_len + 1)) % RATE)
    padded = np.zeros((n, padded_len), dtype=np.uint8)
    padded[:, :msg_len] = messages
    padded[:, msg_len] = domain
    padded[:, -1] ^= 0x80
    state = np.zeros((25, n), dtype=np.uint64)
    for off in range(0, padded_len, RATE):
        block = np.ascontiguousarray(padded[:, off : off + RATE]).view("<u8")  # (n, 21)
        state[:21] ^= block.T
        state = keccak_p1600_batch(state, rounds)
    chunks = []
    produced = 0
    while True:
        lanes = np.ascontiguousarray(state[:21].T).astype("<u8")
        chunks.append(lanes.view(np.uint8).reshape(n, RATE))
        produced += RATE
        if produced >= length:
            break
        state = keccak_p1600_batch(state, rounds)
    out = np.concatenate(chunks, axis=1)[:, :length]
    return np.ascontiguousarray(out)
