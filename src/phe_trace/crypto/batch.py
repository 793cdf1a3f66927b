"""Batch derivation of Rolling Proximity Identifiers: many keys, one contiguous buffer.

The matching hot path derives all identifiers of hundreds of thousands of keys
(``protocol_spec/SPEC.md`` §3 KEY-2, KEY-5, and §8 MATCH-2). The arithmetic is cheap — about
0.5 µs per key of SHA-256 and AES on this kind of machine — but a naive Python path pays
several microseconds per key for creating cipher and HKDF objects. This module removes
that overhead and nothing else; its output is bit-identical to
``b"".join(rpis_bytes(rpik(tek), start, count) for ...)``:

* **HKDF** with the empty salt is ``PRK = HMAC(0x00×32, TEK)``, ``OKM = HMAC(PRK, info ‖ 1)``.
  The HMAC key of the first step is constant, so the SHA-256 states after its inner and
  outer pad blocks are computed once and copied per key (``hashlib``'s ``copy()``); the
  second step XORs the PRK with the pads by ``bytes.translate``.
* **AES-128-ECB** runs through the system's OpenSSL ``libcrypto`` (via :mod:`ctypes`)
  with one reused ``EVP_CIPHER_CTX``: per key only the key is set
  (``EVP_EncryptInit_ex`` with a new key) and one ``EVP_EncryptUpdate`` encrypts all the
  key's PaddedData blocks straight into the caller's buffer. If ``libcrypto`` cannot be
  loaded or fails its known-answer self-test at load time, the same loop uses the
  ``cryptography`` package's cipher objects instead (slower, identical output).

:func:`backend` says which path is in use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
import threading
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import IntervalRangeError, InvalidLengthError
from .keys import KEY_LENGTH, RPI_LENGTH, RPI_PADDED_PREFIX, RPIK_INFO
from .timebase import MAX_INTERVAL, TEK_ROLLING_PERIOD

__all__ = ["backend", "rpis_concat", "rpis_into"]

#: Bytes of identifiers per full-day key: 144 × 16.
_DAY_BYTES = TEK_ROLLING_PERIOD * RPI_LENGTH
_IPAD = hashlib.sha256(b"\x36" * 64)  # state after HMAC's inner pad block, zero key
_OPAD = hashlib.sha256(b"\x5c" * 64)  # state after HMAC's outer pad block, zero key
_X36 = bytes(i ^ 0x36 for i in range(256))
_X5C = bytes(i ^ 0x5C for i in range(256))
_T1_INNER_TAIL = b"\x36" * 32 + RPIK_INFO + b"\x01"  # rest of (PRK ⊕ ipad) ‖ info ‖ 0x01
_T1_OUTER_TAIL = b"\x5c" * 32
_BLOCK_CACHE_SIZE = 512
_SELF_TEST_TEK = bytes.fromhex("75c734c6dd1a782de7a965da5eb93125")
_SELF_TEST_START = 2642976
_SELF_TEST_RPI0 = bytes.fromhex("8be6cd371c5c891604bfbe49df845096")


def _padded_day(start: int) -> bytes:
    return b"".join(
        RPI_PADDED_PREFIX + (j & MAX_INTERVAL).to_bytes(4, "little")
        for j in range(start, start + TEK_ROLLING_PERIOD)
    )


class _LibCrypto:
    """AES-128-ECB through one reused OpenSSL EVP context per process and thread."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        vp = ctypes.c_void_p
        lib.EVP_CIPHER_CTX_new.restype = vp
        lib.EVP_CIPHER_CTX_new.argtypes = []
        lib.EVP_aes_128_ecb.restype = vp
        lib.EVP_aes_128_ecb.argtypes = []
        lib.EVP_EncryptInit_ex.argtypes = [vp, vp, vp, vp, vp]
        lib.EVP_EncryptInit_ex.restype = ctypes.c_int
        lib.EVP_EncryptUpdate.argtypes = [vp, vp, vp, vp, ctypes.c_int]
        lib.EVP_EncryptUpdate.restype = ctypes.c_int
        lib.EVP_CIPHER_CTX_set_padding.argtypes = [vp, ctypes.c_int]
        lib.EVP_CIPHER_CTX_set_padding.restype = ctypes.c_int
        self._lib = lib
        self._local = threading.local()
        self._blocks: dict[int, Any] = {}

    def context(self) -> int:
        """This thread's EVP context (created on first use, again after a fork)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            lib = self._lib
            ctx = lib.EVP_CIPHER_CTX_new()
            if (
                not ctx
                or lib.EVP_EncryptInit_ex(ctx, lib.EVP_aes_128_ecb(), None, bytes(16), None) != 1
            ):
                raise OSError("libcrypto: cannot initialise an AES-128-ECB context")
            lib.EVP_CIPHER_CTX_set_padding(ctx, 0)
            local.ctx, local.out_len, local.pid = ctx, ctypes.c_int(), os.getpid()
        return int(local.ctx)

    def blocks_address(self, start: int) -> int:
        """Address of the 144 PaddedData blocks from ``start`` (cached, bounded)."""
        buf = self._blocks.get(start)
        if buf is None:
            if len(self._blocks) >= _BLOCK_CACHE_SIZE:
                self._blocks.clear()
            buf = ctypes.create_string_buffer(_padded_day(start), _DAY_BYTES)
            self._blocks[start] = buf
        return ctypes.addressof(buf)

    def derive(
        self, out: bytearray, offset: int, teks: bytes, starts: list[int], counts: list[int]
    ) -> int:
        lib = self._lib
        init, update = lib.EVP_EncryptInit_ex, lib.EVP_EncryptUpdate
        ctx = self.context()
        out_len = ctypes.addressof(self._local.out_len)
        window = (ctypes.c_char * len(out)).from_buffer(out)
        try:
            pos = ctypes.addressof(window) + offset
            address = {start: self.blocks_address(start) for start in set(starts)}
            ic, oc, sha = _IPAD.copy, _OPAD.copy, hashlib.sha256
            x36, x5c, tail_in, tail_out = _X36, _X5C, _T1_INNER_TAIL, _T1_OUTER_TAIL
            for i, start, count in zip(range(0, 16 * len(starts), 16), starts, counts, strict=True):
                inner = ic()
                inner.update(teks[i : i + 16])
                outer = oc()
                outer.update(inner.digest())
                prk = outer.digest()
                okm = sha(prk.translate(x5c) + tail_out)
                okm.update(sha(prk.translate(x36) + tail_in).digest())
                init(ctx, None, None, okm.digest(), None)
                update(ctx, pos, out_len, address[start], 16 * count)
                pos += 16 * count
        finally:
            del window
        return RPI_LENGTH * sum(counts)


def _derive_portable(
    out: bytearray, offset: int, teks: bytes, starts: list[int], counts: list[int]
) -> int:
    """The same loop with one ``cryptography`` cipher object per key (the fallback)."""
    ic, oc, sha = _IPAD.copy, _OPAD.copy, hashlib.sha256
    pos = offset
    day_cache: dict[int, bytes] = {}
    for i, (start, count) in enumerate(zip(starts, counts, strict=True)):
        inner = ic()
        inner.update(teks[16 * i : 16 * i + 16])
        outer = oc()
        outer.update(inner.digest())
        prk = outer.digest()
        okm = sha(prk.translate(_X5C) + _T1_OUTER_TAIL)
        okm.update(sha(prk.translate(_X36) + _T1_INNER_TAIL).digest())
        blocks = day_cache.get(start)
        if blocks is None:
            blocks = day_cache[start] = _padded_day(start)
        cipher = Cipher(algorithms.AES(okm.digest()[:16]), modes.ECB())  # noqa: S305 - by spec
        n = 16 * count
        out[pos : pos + n] = cipher.encryptor().update(blocks[:n])
        pos += n
    return pos - offset


def _load_libcrypto() -> _LibCrypto | None:
    if os.environ.get("PHE_TRACE_NO_LIBCRYPTO"):
        return None
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        engine = _LibCrypto(ctypes.CDLL(name))
        out = bytearray(_DAY_BYTES)
        engine.derive(out, 0, _SELF_TEST_TEK, [_SELF_TEST_START], [TEK_ROLLING_PERIOD])
    except (OSError, AttributeError):
        return None
    portable = bytearray(_DAY_BYTES)
    _derive_portable(portable, 0, _SELF_TEST_TEK, [_SELF_TEST_START], [TEK_ROLLING_PERIOD])
    if out[:16] != _SELF_TEST_RPI0 or out != portable:
        return None
    return engine


_ENGINE = _load_libcrypto()


def backend() -> str:
    """``"libcrypto"`` when the ctypes path is active, else ``"cryptography"``."""
    return "libcrypto" if _ENGINE is not None else "cryptography"


def _checked(
    teks: bytes, starts: Sequence[int], counts: Sequence[int]
) -> tuple[list[int], list[int]]:
    start_list = [int(s) for s in starts]
    count_list = [int(c) for c in counts]
    n = len(start_list)
    if not isinstance(teks, bytes) or len(teks) != KEY_LENGTH * n:
        raise InvalidLengthError("teks", teks, KEY_LENGTH * n)
    if len(count_list) != n:
        raise IntervalRangeError(f"counts must have {n} entries, got {len(count_list)}")
    if n:
        if min(count_list) < 1 or max(count_list) > TEK_ROLLING_PERIOD:
            raise IntervalRangeError(f"every count must be in 1..{TEK_ROLLING_PERIOD}")
        if min(start_list) < 0:
            raise IntervalRangeError("every start interval must be >= 0")
        if max(s + c - 1 for s, c in zip(start_list, count_list, strict=True)) > MAX_INTERVAL:
            raise IntervalRangeError(f"start + count - 1 must be <= {MAX_INTERVAL}")
    return start_list, count_list


def rpis_into(
    out: bytearray,
    teks: bytes,
    start_intervals: Sequence[int],
    counts: Sequence[int],
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
    if _ENGINE is not None and not portable:
        return _ENGINE.derive(out, offset, teks, starts, count_list)
    return _derive_portable(out, offset, teks, starts, count_list)


def rpis_concat(
    teks: bytes, start_intervals: Sequence[int], counts: Sequence[int], *, portable: bool = False
) -> bytes:
    """The identifiers of many keys, concatenated (see :func:`rpis_into`)."""
    starts, count_list = _checked(teks, start_intervals, counts)
    out = bytearray(RPI_LENGTH * sum(count_list))
    rpis_into(out, teks, starts, count_list, portable=portable)
    return bytes(out)
