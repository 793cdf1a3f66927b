"""Batch derivation of Rolling Proximity Identifiers: many keys, one contiguous buffer.

The matching hot path derives all identifiers of hundreds of thousands of keys
(``protocol_spec/SPEC.md`` §3 KEY-2, KEY-5, and §8 MATCH-8). The arithmetic is cheap — about
0.5 µs per key of SHA-256 and AES on this kind of machine — but a naive Python path pays
several microseconds per key for creating cipher and HKDF objects. This module removes
that overhead and nothing else; its output is bit-identical to
``b"".join(rpis_bytes(rpik(tek), start, count) for ...)``.

HKDF with the empty salt is ``PRK = HMAC(0x00×32, TEK)``, ``OKM = HMAC(PRK, info ‖ 1)``:
six SHA-256 compressions per key once the two pad blocks of the constant zero key are
precomputed (:func:`phe_trace.crypto.kdf.hkdf_sha256`). Two paths compute it:

* **libcrypto** (default): the system's OpenSSL ``libcrypto`` through :mod:`ctypes`
  (:mod:`phe_trace.crypto._libcrypto`). Keys are processed 1,024 at a time in stages,
  each stage one ``map`` of a foreign function over the batch with prebuilt arguments:
  four SHA-256 calls per key for HKDF, then the AES key set-up and one AES-128-ECB call
  over all PaddedData blocks of the key, written straight into the caller's buffer — six
  foreign calls per key, and no Python bytecode per key.
* **portable** (fallback, used when ``libcrypto`` cannot be loaded or fails its
  known-answer self-test at import): :func:`phe_trace.crypto.kdf.hkdf_sha256` per key and
  one ``cryptography`` cipher object per key. The libcrypto path is an accelerated
  backend of that same function, and the self-test compares the two.

:func:`backend` says which path is in use; ``libcrypto`` is loaded on first use.
"""

from __future__ import annotations

import ctypes.util
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ._libcrypto import DAY_BYTES, LibCrypto, padded_day
from .errors import IntervalRangeError, InvalidLengthError
from .kdf import hkdf_sha256
from .keys import KEY_LENGTH, RPI_LENGTH, RPIK_INFO
from .timebase import MAX_INTERVAL, TEK_ROLLING_PERIOD

__all__ = ["backend", "rpis_concat", "rpis_into"]

_SELF_TEST_TEK = bytes.fromhex("75c734c6dd1a782de7a965da5eb93125")
_SELF_TEST_START = 2642976
_SELF_TEST_RPI0 = bytes.fromhex("8be6cd371c5c891604bfbe49df845096")


IntArray = npt.NDArray[np.integer[Any]]


def _derive_portable(
    out: bytearray, offset: int, teks: bytes, starts: list[int], counts: list[int]
) -> int:
    """The same loop with one ``cryptography`` cipher object per key (the fallback)."""
    pos = offset
    day_cache: dict[int, bytes] = {}
    for i, (start, count) in enumerate(zip(starts, counts, strict=True)):
        key = hkdf_sha256(teks[16 * i : 16 * i + 16], RPIK_INFO, KEY_LENGTH)
        blocks = day_cache.get(start)
        if blocks is None:
            blocks = day_cache[start] = padded_day(start)
        cipher = Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305 - by spec
        n = 16 * count
        out[pos : pos + n] = cipher.encryptor().update(blocks[:n])
        pos += n
    return pos - offset


def _load_libcrypto() -> LibCrypto | None:
    from phe_trace.settings import common_settings

    if common_settings().no_libcrypto:
        return None
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        engine = LibCrypto(name)
        out = bytearray(DAY_BYTES)
        engine.derive(out, 0, _SELF_TEST_TEK, [_SELF_TEST_START], [TEK_ROLLING_PERIOD])
    except (OSError, AttributeError):
        return None
    portable = bytearray(DAY_BYTES)
    _derive_portable(portable, 0, _SELF_TEST_TEK, [_SELF_TEST_START], [TEK_ROLLING_PERIOD])
    if out[:16] != _SELF_TEST_RPI0 or out != portable:
        return None
    return engine


@cache
def _engine() -> LibCrypto | None:
    """The libcrypto path, loaded and self-tested on first use (``None``: unavailable)."""
    return _load_libcrypto()


def backend() -> str:
    """``"libcrypto"`` when the ctypes path is active, else ``"cryptography"``."""
    return "libcrypto" if _engine() is not None else "cryptography"


def _as_array(name: str, values: Sequence[int] | npt.NDArray[np.integer[Any]]) -> IntArray:
    try:
        array = np.asarray(values)
    except (OverflowError, ValueError):
        raise IntervalRangeError(f"{name} must be integers in the uint32 range") from None
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
        raise IntervalRangeError(f"{name} must be a flat sequence of integers")
    if array.dtype.kind == "u" or not array.size:
        array = array.astype(np.int64)
    return array


def _checked(
    teks: bytes,
    starts: Sequence[int] | npt.NDArray[np.integer[Any]],
    counts: Sequence[int] | npt.NDArray[np.integer[Any]],
) -> tuple[list[int], list[int]]:
    """Check the arguments (vectorised) and return them as lists of ints."""
    start_array, count_array = _as_array("start_intervals", starts), _as_array("counts", counts)
    n = len(start_array)
    if not isinstance(teks, bytes) or len(teks) != KEY_LENGTH * n:
        raise InvalidLengthError("teks", teks, KEY_LENGTH * n)
    if len(count_array) != n:
        raise IntervalRangeError(f"counts must have {n} entries, got {len(count_array)}")
    if n:
        if count_array.min() < 1 or count_array.max() > TEK_ROLLING_PERIOD:
            raise IntervalRangeError(f"every count must be in 1..{TEK_ROLLING_PERIOD}")
        if start_array.min() < 0 or start_array.max() > MAX_INTERVAL:
            raise IntervalRangeError(f"every start interval must be in 0..{MAX_INTERVAL}")
        if (start_array + count_array).max() - 1 > MAX_INTERVAL:
            raise IntervalRangeError(f"start + count - 1 must be <= {MAX_INTERVAL}")
    start_list: list[int] = start_array.tolist()
    count_list: list[int] = count_array.tolist()
    return start_list, count_list


def rpis_into(
    out: bytearray,
    teks: bytes,
    start_intervals: Sequence[int] | npt.NDArray[np.integer[Any]],
    counts: Sequence[int] | npt.NDArray[np.integer[Any]],
    *,
    offset: int = 0,
    portable: bool = False,
) -> int:
    """Write the identifiers of many keys into ``out`` from ``offset``; return bytes written.

    ``teks`` is the concatenation of ``n`` 16-byte Temporary Exposure Keys; key ``i``
    contributes the ``counts[i]`` identifiers of intervals ``start_intervals[i]`` onwards,
    right after key ``i - 1``'s (KEY-2, KEY-5). ``out`` must have room for
    ``16 × sum(counts)`` bytes from ``offset``. ``portable=True`` forces the
    ``cryptography`` path (for tests that compare the two).
    """
    starts, count_list = _checked(teks, start_intervals, counts)
    need = RPI_LENGTH * sum(count_list)
    if not isinstance(out, bytearray) or offset < 0 or len(out) < offset + need:
        raise InvalidLengthError("out", out, offset + need)
    engine = None if portable else _engine()
    if engine is not None:
        return engine.derive(out, offset, teks, starts, count_list)
    return _derive_portable(out, offset, teks, starts, count_list)


def rpis_concat(
    teks: bytes,
    start_intervals: Sequence[int] | npt.NDArray[np.integer[Any]],
    counts: Sequence[int] | npt.NDArray[np.integer[Any]],
    *,
    portable: bool = False,
) -> bytes:
    """The identifiers of many keys, concatenated (see :func:`rpis_into`)."""
    starts, count_list = _checked(teks, start_intervals, counts)
    out = bytearray(RPI_LENGTH * sum(count_list))
    rpis_into(out, teks, starts, count_list, portable=portable)
    return bytes(out)
