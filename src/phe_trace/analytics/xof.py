"""XofTurboShake128 of draft-irtf-cfrg-vdaf §6.2.1, and field-vector expansion (SPEC AGG-2).

The XOF's stream for ``(seed, dst, binder)`` is
``TurboSHAKE128(le16(len(dst)) ‖ dst ‖ le8(len(seed)) ‖ seed ‖ binder, D = 1)``.
Field vectors are read by rejection sampling (§6.2): take ``ENCODED_SIZE`` bytes,
little-endian, mask to the modulus' bit length, keep the value if below the modulus.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .field import Field, next_power_of_2
from .keccak import TurboShake128, turboshake128_batch

__all__ = [
    "SEED_SIZE",
    "derive_seed",
    "derive_seed_batch",
    "expand_into_vec",
    "expand_into_vec_batch",
    "xof_message",
]

#: Seed size of XofTurboShake128 in bytes.
SEED_SIZE = 32
#: TurboSHAKE128 domain-separation byte used by XofTurboShake128.
_DOMAIN = 1


def xof_message(seed: bytes, dst: bytes, binder: bytes) -> bytes:
    """The TurboSHAKE128 input for one XOF instance."""
    return len(dst).to_bytes(2, "little") + dst + len(seed).to_bytes(1, "little") + seed + binder


def derive_seed(seed: bytes, dst: bytes, binder: bytes) -> bytes:
    """The first SEED_SIZE bytes of the stream (``Xof.derive_seed``)."""
    return TurboShake128(xof_message(seed, dst, binder), _DOMAIN).read(SEED_SIZE)


def _sample(field: Field, stream: TurboShake128, length: int) -> list[int]:
    mask = next_power_of_2(field.modulus) - 1
    size = field.encoded_size
    out: list[int] = []
    while len(out) < length:
        need = length - len(out)
        chunk = stream.read(need * size)
        for i in range(0, len(chunk), size):
            x = int.from_bytes(chunk[i : i + size], "little") & mask
            if x < field.modulus:
                out.append(x)
    return out


def expand_into_vec(field: Field, seed: bytes, dst: bytes, binder: bytes, length: int) -> list[int]:
    """``length`` field elements from the XOF stream (``Xof.expand_into_vec``)."""
    return _sample(field, TurboShake128(xof_message(seed, dst, binder), _DOMAIN), length)


def _messages(
    prefix: bytes, rows: npt.NDArray[np.uint8], suffix: npt.NDArray[np.uint8] | None
) -> npt.NDArray[np.uint8]:
    n = rows.shape[0]
    parts = [np.broadcast_to(np.frombuffer(prefix, dtype=np.uint8), (n, len(prefix))), rows]
    if suffix is not None:
        parts.append(suffix)
    return np.ascontiguousarray(np.concatenate(parts, axis=1))


def derive_seed_batch(
    seeds: npt.NDArray[np.uint8], dst: bytes, binders: npt.NDArray[np.uint8]
) -> npt.NDArray[np.uint8]:
    """``derive_seed`` for N seeds ``(N, 32)`` and N equal-length binders ``(N, B)``."""
    prefix = len(dst).to_bytes(2, "little") + dst + bytes([SEED_SIZE])
    msgs = _messages(prefix, seeds, binders)
    return turboshake128_batch(msgs, _DOMAIN, SEED_SIZE)


def expand_into_vec_batch(
    field: Field,
    seeds: npt.NDArray[np.uint8],
    dst: bytes,
    binders: npt.NDArray[np.uint8],
    length: int,
) -> list[list[int]]:
    """``expand_into_vec`` for N seeds at once; same result as N scalar calls.

    The batch squeezes exactly ``length`` elements' worth of bytes; a row in which
    rejection sampling threw a value away (probability about 2^-32 per element for
    Field64, far less for Field128) is recomputed with the scalar path.
    """
    prefix = len(dst).to_bytes(2, "little") + dst + bytes([SEED_SIZE])
    msgs = _messages(prefix, seeds, binders)
    size = field.encoded_size
    raw = turboshake128_batch(msgs, _DOMAIN, length * size)
    mask = next_power_of_2(field.modulus) - 1
    q = field.modulus
    out: list[list[int]] = []
    data = raw.tobytes()
    row_len = length * size
    for r in range(raw.shape[0]):
        row = field.integers(data[r * row_len : (r + 1) * row_len])
        if mask != (1 << (8 * size)) - 1:
            row = [x & mask for x in row]
        if row and max(row) >= q:
            msg = bytes(msgs[r])
            row = _sample(field, TurboShake128(msg, _DOMAIN), length)
        out.append(row)
    return out
