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
    """Apply the last ``rounds`` rounds of Keccak-f[1600] to 25 64-bit lanes."""
    a = list(lanes)
    for ir in range(24 - rounds, 24):
        c = [a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20] for x in range(5)]
        d = [
            c[(x - 1) % 5] ^ (((c[(x + 1) % 5] << 1) | (c[(x + 1) % 5] >> 63)) & _MASK)
            for x in range(5)
        ]
        b = [0] * 25
        for i in range(25):
            v = a[i] ^ d[i % 5]
            r = _ROT[i]
            b[_PI[i]] = ((v << r) | (v >> (64 - r))) & _MASK if r else v
        for y in range(0, 25, 5):
            b0, b1, b2, b3, b4 = b[y], b[y + 1], b[y + 2], b[y + 3], b[y + 4]
            a[y] = b0 ^ (~b1 & b2)
            a[y + 1] = b1 ^ (~b2 & b3)
            a[y + 2] = b2 ^ (~b3 & b4)
            a[y + 3] = b3 ^ (~b4 & b0)
            a[y + 4] = b4 ^ (~b0 & b1)
        a[0] ^= _RC[ir]
    return a


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
    out = np.empty((n, 0), dtype=np.uint8)
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
