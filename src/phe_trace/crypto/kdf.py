"""HKDF-SHA256 (RFC 5869): the one key derivation function of phe-trace.

Every key derived from another goes through :func:`hkdf_sha256` (or its two steps,
:func:`hkdf_extract` and :func:`hkdf_expand`): the GAEN key schedule (RPIK and AEMK of a
TEK, ``protocol_spec/SPEC.md`` KEY-2, KEY-3), the portable path of the batch derivation
(:mod:`phe_trace.crypto.batch`) and the verification service's purpose-bound keys
(VER-9). The libcrypto path of the batch derivation (:mod:`phe_trace.crypto._libcrypto`)
is an accelerated backend of the same function for one case — empty salt, 16 bytes, many
keys at once — and is checked against this one before it is used.

Each HMAC-SHA256 (RFC 2104) is computed as its two SHA-256 passes,
``H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ m))``. The hash states after a salt's two pad blocks are
computed once per salt and copied, so a derivation under a fixed salt (the empty salt of
KEY-2/KEY-3 above all) costs six SHA-256 compressions and no HMAC or HKDF object.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

from .errors import CryptoError, InvalidLengthError

__all__ = ["HASH_LENGTH", "hkdf_expand", "hkdf_extract", "hkdf_sha256"]

#: Length of a SHA-256 digest, of HKDF's PRK and of each HKDF-Expand block (bytes).
HASH_LENGTH = 32
#: Longest HKDF-SHA256 output (RFC 5869 §2.3: 255 blocks).
MAX_LENGTH = 255 * HASH_LENGTH
_BLOCK = 64  # SHA-256 block size
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
_IPAD_TAIL = b"\x36" * (_BLOCK - HASH_LENGTH)
_OPAD_TAIL = b"\x5c" * (_BLOCK - HASH_LENGTH)


def _bytes(name: str, value: object) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise CryptoError(f"{name} must be bytes, got {type(value).__name__}")
    return bytes(value)


@lru_cache(maxsize=32)
def _salt_states(salt: bytes) -> tuple[Any, Any]:
    """SHA-256 states after the inner and outer pad blocks of HMAC keyed with ``salt``.

    An empty salt is ``HASH_LENGTH`` zero bytes (RFC 5869 §2.2), which pads to the same
    block as the empty key.
    """
    key = hashlib.sha256(salt).digest() if len(salt) > _BLOCK else salt
    key = key.ljust(_BLOCK, b"\x00")
    return hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))


def hkdf_extract(ikm: bytes, salt: bytes = b"") -> bytes:
    """HKDF-Extract: ``PRK = HMAC-SHA256(salt, IKM)`` (RFC 5869 §2.2)."""
    inner_state, outer_state = _salt_states(_bytes("salt", salt))
    inner = inner_state.copy()
    inner.update(_bytes("ikm", ikm))
    outer = outer_state.copy()
    outer.update(inner.digest())
    prk: bytes = outer.digest()
    return prk


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand: the first ``length`` bytes of ``T(1) ‖ T(2) ‖ …`` with
    ``T(i) = HMAC-SHA256(PRK, T(i−1) ‖ info ‖ i)`` (RFC 5869 §2.3; PRK is 32 bytes)."""
    prk, info = _bytes("prk", prk), _bytes("info", info)
    if len(prk) != HASH_LENGTH:
        raise InvalidLengthError("prk", prk, HASH_LENGTH)
    if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= MAX_LENGTH:
        raise CryptoError(f"length must be an int in 1..{MAX_LENGTH}, got {length!r}")
    sha256 = hashlib.sha256
    inner_key = prk.translate(_IPAD) + _IPAD_TAIL
    outer_key = prk.translate(_OPAD) + _OPAD_TAIL
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        inner = sha256(inner_key + block + info + bytes((counter,))).digest()
        block = sha256(outer_key + inner).digest()
        out += block
        counter += 1
    return out[:length]


def hkdf_sha256(ikm: bytes, info: bytes, length: int, salt: bytes = b"") -> bytes:
    """HKDF-SHA256(IKM, salt, info, L) = Expand(Extract(salt, IKM), info, L) (RFC 5869)."""
    return hkdf_expand(hkdf_extract(ikm, salt), info, length)
