"""Batch identifier derivation is bit-exact (SPEC MATCH-8, KEY-2, KEY-5).

(Tests of ``phe_trace.crypto.batch``: the matcher's derivation primitive.)
"""

from __future__ import annotations

import ctypes.util
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phe_trace import crypto
from phe_trace.crypto import IntervalRangeError, InvalidLengthError, batch
from tests.vectors import load_vectors

key_specs = st.lists(
    st.tuples(
        st.binary(min_size=16, max_size=16),
        st.integers(0, crypto.MAX_INTERVAL - 143),
        st.integers(1, 144),
    ),
    min_size=0,
    max_size=12,
)


def _reference(specs: list[tuple[bytes, int, int]]) -> bytes:
    return b"".join(
        b"".join(crypto.rpis(crypto.rpik(tek), start, count)) for tek, start, count in specs
    )


@settings(max_examples=80, deadline=None)
@given(key_specs, st.booleans())
def test_batch_equals_per_key_derivation(
    specs: list[tuple[bytes, int, int]], portable: bool
) -> None:
    """MATCH-8: both paths equal crypto.rpis(crypto.rpik(tek)) key by key."""
    teks = b"".join(t for t, _, _ in specs)
    starts = [s for _, s, _ in specs]
    counts = [c for _, _, c in specs]
    assert batch.rpis_concat(teks, starts, counts, portable=portable) == _reference(specs)


@settings(deadline=None)
@given(key_specs, st.integers(0, 64))
def test_rpis_into_writes_at_offset_only(specs: list[tuple[bytes, int, int]], offset: int) -> None:
    """MATCH-8: rpis_into fills exactly [offset, offset + 16·Σcount) of the buffer."""
    teks = b"".join(t for t, _, _ in specs)
    need = 16 * sum(c for _, _, c in specs)
    out = bytearray(b"\xaa" * (offset + need + 16))
    written = batch.rpis_into(
        out, teks, [s for _, s, _ in specs], [c for _, _, c in specs], offset=offset
    )
    assert written == need
    assert out[:offset] == b"\xaa" * offset and out[offset + need :] == b"\xaa" * 16
    assert bytes(out[offset : offset + need]) == _reference(specs)


def test_official_gaen_vector_through_the_batch_path() -> None:
    """MATCH-8, KEY-5: Google's v1.2 vector (144 RPIs of one TEK) through both paths."""
    v = load_vectors("gaen_v1_2_key_schedule")
    expected = b"".join(bytes.fromhex(c["rpi"]) for c in v["cases"])
    tek = bytes.fromhex(v["tek"])
    for portable in (False, True):
        assert (
            batch.rpis_concat(tek, [v["rolling_start_interval_number"]], [144], portable=portable)
            == expected
        )
    assert batch.backend() in {"libcrypto", "cryptography"}


@pytest.mark.parametrize(
    ("teks", "starts", "counts", "error"),
    [
        (b"\x00" * 15, [0], [144], InvalidLengthError),
        (b"\x00" * 16, [0], [0], IntervalRangeError),
        (b"\x00" * 16, [0], [145], IntervalRangeError),
        (b"\x00" * 16, [-1], [1], IntervalRangeError),
        (b"\x00" * 16, [crypto.MAX_INTERVAL], [2], IntervalRangeError),
        (b"\x00" * 16, [0, 1], [1], InvalidLengthError),
        (b"\x00" * 32, [0, 1], [1], IntervalRangeError),
    ],
)
def test_bad_batch_arguments(
    teks: bytes, starts: list[int], counts: list[int], error: type[Exception]
) -> None:
    """MATCH-8: lengths and ranges are checked at the door."""
    with pytest.raises(error):
        batch.rpis_concat(teks, starts, counts)


def test_output_buffer_too_small() -> None:
    """MATCH-8: rpis_into refuses a buffer without room."""
    with pytest.raises(InvalidLengthError, match="out"):
        batch.rpis_into(bytearray(100), b"\x00" * 16, [0], [144])


def test_fallback_when_libcrypto_is_unavailable() -> None:
    """MATCH-8: without libcrypto the portable path is used, with the same output."""
    import os
    import subprocess
    import sys

    code = (
        "from phe_trace.crypto import batch, rpis_bytes, rpik;"
        "t = bytes(range(16));"
        "assert batch.backend() == 'cryptography', batch.backend();"
        "assert batch.rpis_concat(t, [7], [144]) == rpis_bytes(rpik(t), 7)"
    )
    env = {**os.environ, "PHE_TRACE_NO_LIBCRYPTO": "1"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


def test_threads_each_get_their_own_workspace() -> None:
    """MATCH-8: concurrent derivations from several threads stay bit-exact."""
    from concurrent.futures import ThreadPoolExecutor

    specs = [(bytes([i]) * 16, 2_642_976 + 144 * i + i, 144 - i) for i in range(40)]
    teks = b"".join(t for t, _, _ in specs)
    starts, counts = [s for _, s, _ in specs], [c for _, _, c in specs]
    expected = _reference(specs)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: batch.rpis_concat(teks, starts, counts), range(16)))
    assert all(r == expected for r in results)


def test_libcrypto_path_is_the_one_tested_where_libcrypto_exists() -> None:
    """MATCH-8: the equivalence tests exercise the libcrypto path, not only the fallback."""
    if ctypes.util.find_library("crypto") is None:
        pytest.skip("no libcrypto on this machine")
    assert batch.backend() == "libcrypto"


def _many(n: int, full: int) -> tuple[list[tuple[bytes, int, int]], bytes, list[int], list[int]]:
    """``n`` random keys: the first ``full`` for full days, then half full, half partial."""
    rng = random.Random(5869)
    specs = [
        (
            rng.randbytes(16),
            rng.randrange(crypto.MAX_INTERVAL - 143),
            144 if i < full or rng.random() < 0.5 else rng.randint(1, 144),
        )
        for i in range(n)
    ]
    teks = b"".join(t for t, _, _ in specs)
    return specs, teks, [s for _, s, _ in specs], [c for _, _, c in specs]


def test_many_keys_across_stage_boundaries() -> None:
    """MATCH-8: thousands of keys (several internal batches, full and partial days) at once."""
    specs, teks, starts, counts = _many(2600, full=1500)
    fast = batch.rpis_concat(teks, starts, counts)
    assert fast == batch.rpis_concat(teks, starts, counts, portable=True)
    assert fast == _reference(specs)


def test_evp_encrypt_route_gives_the_same_identifiers() -> None:
    """MATCH-8: AES through EVP_EncryptInit_ex / EVP_EncryptUpdate (the route taken where
    libcrypto has no AES method-table API, as in OpenSSL 4) equals the portable path."""
    name = ctypes.util.find_library("crypto")
    if name is None:
        pytest.skip("no libcrypto on this machine")
    from phe_trace.crypto._libcrypto import LibCrypto

    engine = LibCrypto(name, method_table=False)
    assert not engine.method_table
    _, teks, starts, counts = _many(1300, full=1024)
    out = bytearray(16 * sum(counts) + 16)
    assert engine.derive(out, 16, teks, starts, counts) == len(out) - 16
    assert out[:16] == bytes(16)
    assert out[16:] == batch.rpis_concat(teks, starts, counts, portable=True)
