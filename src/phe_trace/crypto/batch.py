"""Batch derivation of Rolling Proximity Identifiers: many keys, one contiguous buffer.

The matching hot path derives all identifiers of hundreds of thousands of keys
(``protocol_spec/SPEC.md`` §3 KEY-2, KEY-5, and §8 MATCH-8). The arithmetic is cheap — about
0.5 µs per key of SHA-256 and AES on this kind of machine — but a naive Python path pays
several microseconds per key for creating cipher and HKDF objects. This module removes
that overhead and nothing else; its output is bit-identical to
``b"".join(rpis_bytes(rpik(tek), start, count) for ...)``.

HKDF with the empty salt is ``PRK = HMAC(0x00×32, TEK)``, ``OKM = HMAC(PRK, info ‖ 1)``:
six SHA-256 compressions per key once the two pad blocks of the constant zero key are
precomputed. Two paths compute it:

* **libcrypto** (default): the system's OpenSSL ``libcrypto`` through :mod:`ctypes`. Keys
  are processed 1,024 at a time in stages — four SHA-256 calls per key (``SHA256_Transform``
  for each one-block PRK hash, ``SHA256_Update`` over both blocks of each OKM hash) on
  per-key states and message rows held in numpy arrays (digests move between stages as
  numpy operations), then per key one ``EVP_EncryptInit_ex`` with the new AES key on a
  reused EVP context and one ``EVP_EncryptUpdate`` over all its PaddedData blocks, written
  straight into the caller's buffer: six foreign calls per key. The calls are driven by
  ``map`` with prebuilt pointer arguments, so no Python bytecode and no argument
  conversion runs per key and per stage.
* **portable** (fallback, used when ``libcrypto`` cannot be loaded or fails its
  known-answer self-test at import): ``hashlib`` with copied midstates for HKDF and one
  ``cryptography`` cipher object per key.

:func:`backend` says which path is in use; ``libcrypto`` is loaded on first use.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import hashlib
import os
import threading
import weakref
from collections.abc import Sequence
from functools import cache
from itertools import accumulate, repeat
from typing import Any

import numpy as np
import numpy.typing as npt
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


def _sha256_pad(used: int, total: int) -> bytes:
    """SHA-256 padding after ``used`` bytes of the last block of a ``total``-byte message."""
    return b"\x80" + bytes(55 - used) + (8 * total).to_bytes(8, "big")


#: SHA-256 initial state (FIPS 180-4 §5.3.3).
_SHA256_H0 = (
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
    0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
)  # fmt: skip
#: Words of OpenSSL's SHA256_CTX (h[8], Nl, Nh, data[16], num, md_len); 112 bytes.
_SHA_CTX_WORDS = 28
#: Keys processed per stage by the libcrypto path (its work arrays are this long).
_STAGE_KEYS = 1024

U32Array = npt.NDArray[np.uint32]
IntArray = npt.NDArray[np.integer[Any]]
U8Array = npt.NDArray[np.uint8]


#: A prebuilt C pointer argument (ctypes' ``cparam``): passed to a foreign function with
#: no conversion at all, unlike an ``int`` through ``argtypes`` or a ``c_void_p`` instance.
_pointer = ctypes.c_void_p.from_param


def _free_contexts(free: Any, contexts: list[int]) -> None:
    for ctx in contexts:
        free(ctx)


def _pointers(array: npt.NDArray[Any]) -> list[Any]:
    """One prebuilt pointer argument per row of a C-contiguous 2-D array."""
    base, step = array.ctypes.data, array.strides[0]
    return list(map(_pointer, range(base, base + step * len(array), step)))


class _Workspace:
    """Per-thread buffers of the staged derivation, their row pointers, and EVP contexts.

    Every message block of HKDF lives in its own per-key row, with its constant part
    (padding, pads, info) written once here; a stage only fills in the per-key bytes. The
    rows' C pointers are made once, so the hot loop passes prebuilt pointer objects.
    """

    def __init__(self, lib: _LibCrypto, slots: int) -> None:
        self.pid = os.getpid()
        self.state: U32Array = np.zeros((slots, _SHA_CTX_WORDS), dtype=np.uint32)
        self.prk_inner: U8Array = np.zeros((slots, 64), dtype=np.uint8)  # TEK ‖ pad
        self.prk_outer: U8Array = np.zeros((slots, 64), dtype=np.uint8)  # digest ‖ pad
        self.okm_inner: U8Array = np.zeros((slots, 128), dtype=np.uint8)
        self.okm_outer: U8Array = np.zeros((slots, 128), dtype=np.uint8)
        self.keys: U8Array = np.zeros((slots, 16), dtype=np.uint8)
        self.prk_inner[:, 16:] = np.frombuffer(_sha256_pad(16, 80), dtype=np.uint8)
        self.prk_outer[:, 32:] = np.frombuffer(_sha256_pad(32, 96), dtype=np.uint8)
        # (PRK ⊕ ipad) ‖ 0x36×32 | info ‖ 0x01 ‖ pad;  (PRK ⊕ opad) ‖ 0x5c×32 | digest ‖ pad
        self.okm_inner[:, 32:64] = 0x36
        self.okm_inner[:, 64:] = np.frombuffer(RPIK_INFO + b"\x01" + _sha256_pad(8, 72), np.uint8)
        self.okm_outer[:, 32:64] = 0x5C
        self.okm_outer[:, 96:] = np.frombuffer(_sha256_pad(32, 96), dtype=np.uint8)
        # Big-endian word views where a digest (state words) is written.
        self.prk_outer_words = self.prk_outer[:, :32].view(">u4")
        self.okm_inner_words = self.okm_inner.view(">u4")
        self.okm_outer_words = self.okm_outer.view(">u4")
        self.key_words = self.keys.view(">u4")
        self.p_state = _pointers(self.state)
        self.p_prk_inner, self.p_prk_outer = _pointers(self.prk_inner), _pointers(self.prk_outer)
        self.p_okm_inner, self.p_okm_outer = _pointers(self.okm_inner), _pointers(self.okm_outer)
        self.p_keys = _pointers(self.keys)
        self.out_len = ctypes.c_int()
        self.p_out_len = ctypes.byref(self.out_len)
        self.contexts = [lib.new_aes_context() for _ in range(slots)]
        weakref.finalize(self, _free_contexts, lib.free_context, self.contexts)
        self.ciphers = list(map(_pointer, self.contexts))


class _LibCrypto:
    """HKDF and AES-128-ECB through OpenSSL ``libcrypto``, one stage for many keys at once.

    HKDF-SHA256 is its six SHA-256 compressions (the two pad blocks of the zero-key HMAC
    are precomputed) in four calls per key: ``SHA256_Transform`` for each of the two
    one-block PRK hashes, ``SHA256_Update`` over both blocks of each OKM hash. Digests move
    between stages as numpy operations on all keys of the stage. AES then runs with one
    EVP context per key slot (``EVP_EncryptInit_ex`` with the new key, one
    ``EVP_EncryptUpdate`` over the PaddedData blocks), straight into the caller's buffer.
    The calls are made through ``map`` with prebuilt pointer objects and no ``argtypes``
    conversion, from a :class:`ctypes.PyDLL` handle (no GIL release around calls of well
    under a microsecond), so no Python bytecode runs per key.
    """

    def __init__(self, name: str) -> None:
        lib = ctypes.CDLL(name)  # set-up calls, with argtypes
        vp = ctypes.c_void_p
        for fname, argtypes, restype in (
            ("EVP_CIPHER_CTX_new", [], vp),
            ("EVP_aes_128_ecb", [], vp),
            ("EVP_EncryptInit_ex", [vp, vp, vp, vp, vp], ctypes.c_int),
            ("EVP_CIPHER_CTX_set_padding", [vp, ctypes.c_int], ctypes.c_int),
            ("EVP_CIPHER_CTX_free", [vp], None),
            ("SHA256_Transform", [vp, vp], None),
        ):
            function = getattr(lib, fname)
            function.argtypes, function.restype = argtypes, restype
        self._lib = lib
        hot = ctypes.PyDLL(name)  # hot-path calls: arguments are prebuilt C objects
        self._transform, self._update = hot.SHA256_Transform, hot.SHA256_Update
        self._init, self._encrypt = hot.EVP_EncryptInit_ex, hot.EVP_EncryptUpdate
        self._transform.restype = self._update.restype = None
        self._init.restype = self._encrypt.restype = ctypes.c_int
        self.free_context = lib.EVP_CIPHER_CTX_free
        self._local = threading.local()
        self._blocks: dict[int, Any] = {}
        self._h0 = np.array(_SHA256_H0, dtype=np.uint32)
        self._mid_inner = self._compress(self._h0, b"\x36" * 64)
        self._mid_outer = self._compress(self._h0, b"\x5c" * 64)
        self._len128 = ctypes.c_size_t.from_param(128)

    def _compress(self, h: U32Array, block: bytes) -> U32Array:
        state = np.zeros(_SHA_CTX_WORDS, dtype=np.uint32)
        state[:8] = h
        data = ctypes.create_string_buffer(block, 64)
        self._lib.SHA256_Transform(state.ctypes.data, ctypes.addressof(data))
        return state[:8].copy()

    def new_aes_context(self) -> int:
        """A fresh AES-128-ECB encryption context without padding."""
        lib = self._lib
        ctx = lib.EVP_CIPHER_CTX_new()
        if (
            not ctx
            or lib.EVP_EncryptInit_ex(ctx, lib.EVP_aes_128_ecb(), None, bytes(16), None) != 1
        ):
            lib.EVP_CIPHER_CTX_free(ctx)
            raise OSError("libcrypto: cannot initialise an AES-128-ECB context")
        lib.EVP_CIPHER_CTX_set_padding(ctx, 0)
        return int(ctx)

    def workspace(self) -> _Workspace:
        """This thread's workspace (created on first use, again after a fork)."""
        ws: _Workspace | None = getattr(self._local, "ws", None)
        if ws is None or ws.pid != os.getpid():
            ws = self._local.ws = _Workspace(self, _STAGE_KEYS)
        return ws

    def blocks(self, start: int) -> tuple[Any, Any]:
        """The 144 PaddedData blocks from ``start``: a C buffer and a pointer to it (cached).

        The pointer does not keep the buffer alive: hold the pair while it is used.
        """
        entry = self._blocks.get(start)
        if entry is None:
            if len(self._blocks) >= _BLOCK_CACHE_SIZE:
                self._blocks = {}
            buf = ctypes.create_string_buffer(_padded_day(start), _DAY_BYTES)
            entry = self._blocks[start] = (buf, _pointer(ctypes.addressof(buf)))
        return entry

    def _hkdf(self, ws: _Workspace, teks: bytes) -> None:
        """RPIK of each 16-byte key in ``teks`` (n ≤ slots) into ``ws.keys[:n]``."""
        n = len(teks) // KEY_LENGTH
        state = ws.state[:n, :8]
        states = ws.p_state[:n]
        ws.prk_inner[:n, :16] = np.frombuffer(teks, dtype=np.uint8).reshape(n, 16)
        state[:] = self._mid_inner  # PRK = HMAC(0^32, TEK): inner hash
        collections.deque(map(self._transform, states, ws.p_prk_inner[:n]), maxlen=0)
        ws.prk_outer_words[:n] = state
        state[:] = self._mid_outer  # outer hash
        collections.deque(map(self._transform, states, ws.p_prk_outer[:n]), maxlen=0)
        np.bitwise_xor(state, 0x36363636, out=ws.okm_inner_words[:n, :8])  # PRK ⊕ ipad
        np.bitwise_xor(state, 0x5C5C5C5C, out=ws.okm_outer_words[:n, :8])  # PRK ⊕ opad
        state[:] = self._h0  # OKM = HMAC(PRK, info ‖ 1): inner hash, two blocks
        size = repeat(self._len128)
        collections.deque(map(self._update, states, ws.p_okm_inner[:n], size), maxlen=0)
        ws.okm_outer_words[:n, 16:24] = state
        state[:] = self._h0  # outer hash, two blocks
        collections.deque(map(self._update, states, ws.p_okm_outer[:n], size), maxlen=0)
        ws.key_words[:n] = state[:, :4]

    def derive(
        self, out: bytearray, offset: int, teks: bytes, starts: list[int], counts: list[int]
    ) -> int:
        ws = self.workspace()
        window = (ctypes.c_char * len(out)).from_buffer(out)
        try:
            pos = ctypes.addressof(window) + offset
            held = {start: self.blocks(start) for start in set(starts)}  # alive until done
            block_pointers = {start: pointer for start, (_, pointer) in held.items()}
            out_len = repeat(ws.p_out_len)
            for b in range(0, len(starts), _STAGE_KEYS):
                part_starts, part_counts = starts[b : b + _STAGE_KEYS], counts[b : b + _STAGE_KEYS]
                n = len(part_starts)
                self._hkdf(ws, teks[16 * b : 16 * (b + n)])
                if min(part_counts) == TEK_ROLLING_PERIOD:  # full days: no per-key arithmetic
                    sizes: Any = repeat(_DAY_BYTES)
                    places: Any = range(pos, pos + _DAY_BYTES * (n + 1), _DAY_BYTES)
                else:
                    sizes = [16 * c for c in part_counts]
                    places = [pos + o for o in accumulate(sizes, initial=0)]
                ciphers = ws.ciphers[:n]
                nulls = repeat(None)
                if not all(map(self._init, ciphers, nulls, nulls, ws.p_keys[:n], nulls)):
                    raise OSError("libcrypto: EVP_EncryptInit_ex failed")
                blocks = map(block_pointers.__getitem__, part_starts)
                outs = map(_pointer, places[:n])
                if not all(map(self._encrypt, ciphers, outs, out_len, blocks, sizes)):
                    raise OSError("libcrypto: EVP_EncryptUpdate failed")
                pos = places[n]
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
        engine = _LibCrypto(name)
        out = bytearray(_DAY_BYTES)
        engine.derive(out, 0, _SELF_TEST_TEK, [_SELF_TEST_START], [TEK_ROLLING_PERIOD])
    except (OSError, AttributeError):
        return None
    portable = bytearray(_DAY_BYTES)
    _derive_portable(portable, 0, _SELF_TEST_TEK, [_SELF_TEST_START], [TEK_ROLLING_PERIOD])
    if out[:16] != _SELF_TEST_RPI0 or out != portable:
        return None
    return engine


@cache
def _engine() -> _LibCrypto | None:
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
