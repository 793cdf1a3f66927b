"""The libcrypto path of :mod:`phe_trace.crypto.batch`: staged HKDF and AES for many keys.

Everything runs in OpenSSL's ``libcrypto`` through :mod:`ctypes`; what this module saves is
the cost of reaching it. Keys are processed :data:`STAGE_KEYS` at a time, in stages, and
each stage is one ``map`` of a foreign function over all keys of the batch, with argument
objects built once (pointers into per-thread numpy arrays), so no Python bytecode and no
argument conversion runs per key. Per key that is six foreign calls:

* HKDF-SHA256 with the empty salt (RFC 5869 §2.2–2.3, ``protocol_spec/SPEC.md`` KEY-2) —
  an accelerated backend of :func:`phe_trace.crypto.kdf.hkdf_sha256` for this one case, many
  16-byte keys at once — is
  ``PRK = HMAC(0x00×32, TEK)``, ``OKM = HMAC(PRK, info ‖ 0x01)``: six SHA-256 compressions
  once the two pad blocks of the constant zero key are precomputed, in four calls —
  ``SHA256_Transform`` for each one-block PRK hash, ``SHA256_Update`` over both blocks of
  each OKM hash. Digests move from one stage's state words into the next stage's message
  rows as numpy operations on the whole batch.
* AES-128-ECB over the PaddedData blocks (KEY-4, KEY-5): the key schedule and one call over
  all blocks of the key, written straight into the caller's buffer. Both are the
  ``init`` and ``do_cipher`` functions of libcrypto's own AES-128-ECB method table, taken
  from a copy of it (``EVP_CIPHER_meth_dup``, deprecated in OpenSSL 3 but exported), on
  one ``EVP_CIPHER_CTX`` per key slot set up once by ``EVP_EncryptInit_ex``. That skips
  OpenSSL 3's provider dispatch, which looks the key length up as a parameter on every
  key change (about 0.1 µs per key here). Where libcrypto has no such API (OpenSSL 4
  removed it), the same two steps are ``EVP_EncryptInit_ex`` and ``EVP_EncryptUpdate``.

The caller (:func:`phe_trace.crypto.batch`'s loader) checks the output against a
known-answer vector and the portable path (which derives with ``hkdf_sha256``) before
using it.
"""

from __future__ import annotations

import collections
import ctypes
import os
import threading
import weakref
from itertools import accumulate, repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from .keys import KEY_LENGTH, RPI_LENGTH, RPI_PADDED_PREFIX, RPIK_INFO
from .timebase import MAX_INTERVAL, TEK_ROLLING_PERIOD

__all__ = ["DAY_BYTES", "STAGE_KEYS", "LibCrypto", "padded_day"]

#: Bytes of identifiers per full-day key: 144 × 16.
DAY_BYTES = TEK_ROLLING_PERIOD * RPI_LENGTH
#: Keys processed per stage (the length of the per-thread work arrays).
STAGE_KEYS = 1024
#: PaddedData buffers kept, one per distinct start interval.
_BLOCK_CACHE_SIZE = 512
#: Output places remembered per thread (a reused output buffer needs one per batch).
_PLACES_CACHE_SIZE = 16
#: SHA-256 initial state (FIPS 180-4 §5.3.3).
_SHA256_H0 = (
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
    0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
)  # fmt: skip
#: Words of OpenSSL's SHA256_CTX (h[8], Nl, Nh, data[16], num, md_len); 112 bytes.
_SHA_CTX_WORDS = 28
#: A prebuilt C argument (ctypes' ``cparam``) is passed on with no conversion at all,
#: unlike an ``int`` through ``argtypes`` or a ``c_void_p`` instance.
_pointer = ctypes.c_void_p.from_param
_size = ctypes.c_size_t.from_param
#: Byte lengths of 0…144 identifiers as ``size_t`` (``do_cipher``) and ``int`` arguments.
_LENGTHS = [_size(RPI_LENGTH * c) for c in range(TEK_ROLLING_PERIOD + 1)]
_INT_LENGTHS = [ctypes.c_int.from_param(RPI_LENGTH * c) for c in range(TEK_ROLLING_PERIOD + 1)]

U8Array = npt.NDArray[np.uint8]
U32Array = npt.NDArray[np.uint32]


def padded_day(start: int) -> bytes:
    """The 144 PaddedData blocks of intervals ``start`` onwards (KEY-4)."""
    return b"".join(
        RPI_PADDED_PREFIX + (j & MAX_INTERVAL).to_bytes(4, "little")
        for j in range(start, start + TEK_ROLLING_PERIOD)
    )


def _sha256_pad(used: int, total: int) -> bytes:
    """SHA-256 padding after ``used`` bytes of the last block of a ``total``-byte message."""
    return b"\x80" + bytes(55 - used) + (8 * total).to_bytes(8, "big")


def _pointers(array: npt.NDArray[Any]) -> list[Any]:
    """One prebuilt pointer argument per row of a C-contiguous array."""
    base, step = array.ctypes.data, array.strides[0]
    return list(map(_pointer, range(base, base + step * len(array), step)))


def _head(rows: list[Any], n: int) -> list[Any]:
    """The first ``n`` rows (the list itself when that is all of it: no copy)."""
    return rows if n == len(rows) else rows[:n]


def _free_contexts(free: Any, contexts: list[int]) -> None:
    for ctx in contexts:
        free(ctx)


class _Workspace:
    """Per-thread HKDF rows, their pointer arguments, and one AES context per key slot.

    Each of the four SHA-256 stages has its own state rows and message rows; the constant
    parts of the messages (padding, pads, info) are written once here, so a stage only
    fills in the per-key bytes.
    """

    def __init__(self, lib: LibCrypto, slots: int) -> None:
        self.pid = os.getpid()
        self.states: U32Array = np.zeros((4, slots, _SHA_CTX_WORDS), dtype=np.uint32)
        self.prk_inner: U8Array = np.zeros((slots, 64), dtype=np.uint8)  # TEK ‖ pad
        self.prk_outer: U8Array = np.zeros((slots, 64), dtype=np.uint8)  # digest ‖ pad
        # (PRK ⊕ ipad) ‖ 0x36×32 ‖ info ‖ 0x01 ‖ pad;  (PRK ⊕ opad) ‖ 0x5c×32 ‖ digest ‖ pad
        self.okm_inner: U8Array = np.zeros((slots, 128), dtype=np.uint8)
        self.okm_outer: U8Array = np.zeros((slots, 128), dtype=np.uint8)
        self.keys: U8Array = np.zeros((slots, 16), dtype=np.uint8)
        self.prk_inner[:, 16:] = np.frombuffer(_sha256_pad(16, 80), dtype=np.uint8)
        self.prk_outer[:, 32:] = np.frombuffer(_sha256_pad(32, 96), dtype=np.uint8)
        self.okm_inner[:, 32:64] = 0x36
        self.okm_inner[:, 64:] = np.frombuffer(RPIK_INFO + b"\x01" + _sha256_pad(8, 72), np.uint8)
        self.okm_outer[:, 32:64] = 0x5C
        self.okm_outer[:, 96:] = np.frombuffer(_sha256_pad(32, 96), dtype=np.uint8)
        # Big-endian word views of the places a digest (state words) is written to.
        self.prk_outer_words = self.prk_outer[:, :32].view(">u4")
        self.okm_inner_words = self.okm_inner.view(">u4")
        self.okm_outer_words = self.okm_outer.view(">u4")
        self.key_words = self.keys.view(">u4")
        self.p_states = [_pointers(s) for s in self.states]
        # The chaining values h[0..7] of every state as one 32-byte item each: resetting
        # them is one strided copy per key instead of eight word copies.
        self.heads = self.states[:, :, :8].view("V32")
        self.p_prk_inner, self.p_prk_outer = _pointers(self.prk_inner), _pointers(self.prk_outer)
        self.p_okm_inner, self.p_okm_outer = _pointers(self.okm_inner), _pointers(self.okm_outer)
        self.p_keys = _pointers(self.keys)
        self.places: dict[int, list[Any]] = {}  # full-day output rows by first address
        self.out_len = ctypes.c_int()
        self.p_out_len = ctypes.byref(self.out_len)
        self.contexts: list[int] = []
        weakref.finalize(self, _free_contexts, lib.free_context, self.contexts)
        self.contexts.extend(lib.new_aes_context() for _ in range(slots))
        self.p_contexts = list(map(_pointer, self.contexts))


def _method_table(lib: ctypes.CDLL) -> tuple[int, int, int] | None:
    """A copy of libcrypto's AES-128-ECB method table with its ``init`` and ``do_cipher``
    functions, or None where the library has no such API."""
    vp = ctypes.c_void_p
    try:
        functions = [
            getattr(lib, f"EVP_CIPHER_meth_{name}") for name in ("dup", "get_init", "get_do_cipher")
        ]
    except AttributeError:
        return None
    for function in functions:
        function.argtypes, function.restype = [vp], vp
    dup, get_init, get_do_cipher = functions
    copy = dup(lib.EVP_aes_128_ecb())  # kept for the life of the process
    init, do_cipher = (get_init(copy), get_do_cipher(copy)) if copy else (None, None)
    if not copy or not init or not do_cipher:
        return None
    return copy, init, do_cipher


class LibCrypto:
    """Batch HKDF and AES-128-ECB through ``libcrypto`` at ``name`` (see the module doc).

    AES runs through libcrypto's AES-128-ECB method table where the library still has that
    API (OpenSSL 1.1 and 3.x; 4.0 removed it), else — or with ``method_table=False`` —
    through ``EVP_EncryptInit_ex`` / ``EVP_EncryptUpdate``. Raises :class:`OSError` or
    :class:`AttributeError` when the library or a function it needs is missing.
    """

    def __init__(self, name: str, *, method_table: bool = True) -> None:
        lib = ctypes.CDLL(name)  # set-up calls, with argtypes
        vp = ctypes.c_void_p
        for fname, argtypes, restype in (
            ("EVP_CIPHER_CTX_new", [], vp),
            ("EVP_CIPHER_CTX_free", [vp], None),
            ("EVP_CIPHER_CTX_set_padding", [vp, ctypes.c_int], ctypes.c_int),
            ("EVP_EncryptInit_ex", [vp, vp, vp, vp, vp], ctypes.c_int),
            ("EVP_aes_128_ecb", [], vp),
            ("SHA256_Transform", [vp, vp], None),
        ):
            function = getattr(lib, fname)
            function.argtypes, function.restype = argtypes, restype
        self._lib = lib
        self.free_context = lib.EVP_CIPHER_CTX_free
        # Hot-path functions: called with prebuilt arguments only, without releasing the
        # GIL (each call is well under a microsecond).
        hot = ctypes.PyDLL(name)
        self._transform, self._update = hot.SHA256_Transform, hot.SHA256_Update
        self._transform.restype = self._update.restype = None
        table = _method_table(lib) if method_table else None
        #: Whether AES runs through the method table (else through EVP_Encrypt*).
        self.method_table = table is not None
        self._aes_init: Any
        self._aes_cipher: Any
        if table is not None:
            self._cipher, init, do_cipher = table
            returns_int = ctypes.PYFUNCTYPE(ctypes.c_int)
            self._aes_init, self._aes_cipher = returns_int(init), returns_int(do_cipher)
        else:
            self._cipher = lib.EVP_aes_128_ecb()
            self._aes_init, self._aes_cipher = hot.EVP_EncryptInit_ex, hot.EVP_EncryptUpdate
            self._aes_init.restype = self._aes_cipher.restype = ctypes.c_int
        self._local = threading.local()
        self._blocks: dict[int, tuple[Any, Any]] = {}
        h0 = np.array(_SHA256_H0, dtype=np.uint32)
        # Initial state of each SHA-256 stage: after the zero key's ipad / opad block, H0.
        self._initial = np.stack(
            [self._compress(h0, b"\x36" * 64), self._compress(h0, b"\x5c" * 64), h0, h0]
        )[:, None, :].view("V32")
        self._len128 = _size(128)

    def _compress(self, h: U32Array, block: bytes) -> U32Array:
        state = np.zeros(_SHA_CTX_WORDS, dtype=np.uint32)
        state[:8] = h
        data = ctypes.create_string_buffer(block, 64)
        self._lib.SHA256_Transform(state.ctypes.data, ctypes.addressof(data))
        return state[:8].copy()

    def new_aes_context(self) -> int:
        """A fresh AES-128-ECB encryption context, without padding."""
        lib = self._lib
        ctx = lib.EVP_CIPHER_CTX_new()
        if not ctx or lib.EVP_EncryptInit_ex(ctx, self._cipher, None, bytes(16), None) != 1:
            lib.EVP_CIPHER_CTX_free(ctx)
            raise OSError("libcrypto: cannot initialise an AES-128-ECB context")
        lib.EVP_CIPHER_CTX_set_padding(ctx, 0)
        return int(ctx)

    def workspace(self) -> _Workspace:
        """This thread's workspace (created on first use, again after a fork)."""
        ws: _Workspace | None = getattr(self._local, "ws", None)
        if ws is None or ws.pid != os.getpid():
            ws = self._local.ws = _Workspace(self, STAGE_KEYS)
        return ws

    @staticmethod
    def _full_day_places(ws: _Workspace, pos: int) -> list[Any]:
        """Pointers to ``STAGE_KEYS`` consecutive full-day rows from ``pos`` (cached)."""
        places = ws.places.get(pos)
        if places is None:
            if len(ws.places) >= _PLACES_CACHE_SIZE:
                ws.places.clear()
            end = pos + DAY_BYTES * STAGE_KEYS
            places = ws.places[pos] = list(map(_pointer, range(pos, end, DAY_BYTES)))
        return places

    def blocks(self, start: int) -> tuple[Any, Any]:
        """The PaddedData blocks from ``start``: a C buffer and a pointer to it (cached).

        The pointer does not keep the buffer alive: hold the pair while it is used.
        """
        entry = self._blocks.get(start)
        if entry is None:
            if len(self._blocks) >= _BLOCK_CACHE_SIZE:
                self._blocks = {}
            buf = ctypes.create_string_buffer(padded_day(start), DAY_BYTES)
            entry = self._blocks[start] = (buf, _pointer(ctypes.addressof(buf)))
        return entry

    def _hkdf(self, ws: _Workspace, teks: bytes) -> None:
        """RPIK of each 16-byte key in ``teks`` (n ≤ slots) into ``ws.keys[:n]``."""
        n = len(teks) // KEY_LENGTH
        states = ws.states[:, :n, :8]
        prk_in, prk_out, okm_in, okm_out = states
        p_prk_in, p_prk_out, p_okm_in, p_okm_out = (_head(p, n) for p in ws.p_states)
        run, size = collections.deque, repeat(self._len128)
        ws.heads[:, :n] = self._initial
        ws.prk_inner[:n, :16] = np.frombuffer(teks, dtype=np.uint8).reshape(n, 16)
        run(map(self._transform, p_prk_in, _head(ws.p_prk_inner, n)), maxlen=0)  # PRK: inner
        ws.prk_outer_words[:n] = prk_in
        run(map(self._transform, p_prk_out, _head(ws.p_prk_outer, n)), maxlen=0)  # PRK: outer
        np.bitwise_xor(prk_out, 0x36363636, out=ws.okm_inner_words[:n, :8])  # PRK ⊕ ipad
        np.bitwise_xor(prk_out, 0x5C5C5C5C, out=ws.okm_outer_words[:n, :8])  # PRK ⊕ opad
        run(map(self._update, p_okm_in, _head(ws.p_okm_inner, n), size), maxlen=0)  # OKM: inner
        ws.okm_outer_words[:n, 16:24] = okm_in
        run(map(self._update, p_okm_out, _head(ws.p_okm_outer, n), size), maxlen=0)  # OKM: outer
        ws.key_words[:n] = okm_out[:, :4]

    def _aes(self, ws: _Workspace, n: int, outs: Any, blocks: Any, counts: Any) -> None:
        """Per key: its RPIK as the AES key, then its PaddedData blocks (``counts``, or a full
        day when None) encrypted to its place in ``outs``."""
        contexts, keys, nulls = _head(ws.p_contexts, n), _head(ws.p_keys, n), repeat(None)
        table = _LENGTHS if self.method_table else _INT_LENGTHS
        lengths: Any = (
            repeat(table[TEK_ROLLING_PERIOD]) if counts is None else map(table.__getitem__, counts)
        )
        if self.method_table:  # init(ctx, key, iv, enc), do_cipher(ctx, out, in, len)
            keyed = all(map(self._aes_init, contexts, keys, nulls, repeat(1)))
            done = keyed and all(map(self._aes_cipher, contexts, outs, blocks, lengths))
        else:
            keyed = all(map(self._aes_init, contexts, nulls, nulls, keys, nulls))
            out_len = repeat(ws.p_out_len)
            done = keyed and all(map(self._aes_cipher, contexts, outs, out_len, blocks, lengths))
        if not done:
            raise OSError("libcrypto: AES-128-ECB failed")

    def derive(
        self, out: bytearray, offset: int, teks: bytes, starts: list[int], counts: list[int]
    ) -> int:
        """Write the identifiers of every key into ``out`` from ``offset`` (checked args)."""
        ws = self.workspace()
        window = (ctypes.c_char * len(out)).from_buffer(out)
        try:
            pos = ctypes.addressof(window) + offset
            held = {start: self.blocks(start) for start in set(starts)}  # alive until done
            block_pointers = {start: pointer for start, (_, pointer) in held.items()}
            for b in range(0, len(starts), STAGE_KEYS):
                part_starts, part_counts = starts[b : b + STAGE_KEYS], counts[b : b + STAGE_KEYS]
                n = len(part_starts)
                self._hkdf(ws, teks[16 * b : 16 * (b + n)])
                full = min(part_counts) == TEK_ROLLING_PERIOD  # full days: no per-key arithmetic
                if full:
                    outs: Any = self._full_day_places(ws, pos)
                    end = pos + DAY_BYTES * n
                else:
                    places = list(accumulate((16 * c for c in part_counts), initial=pos))
                    outs, end = map(_pointer, places[:n]), places[n]
                blocks = map(block_pointers.__getitem__, part_starts)
                self._aes(ws, n, outs, blocks, None if full else part_counts)
                pos = end
        finally:
            del window
        return RPI_LENGTH * sum(counts)
