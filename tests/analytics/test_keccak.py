"""TurboSHAKE128 / Keccak-p[1600, n_r] checked against independent references (SPEC AGG-2).

* With all 24 rounds and domain byte 0x1F the sponge is SHAKE128, which ``hashlib``
  implements independently (FIPS 202).
* RFC 9861 §5 gives TurboSHAKE128(M = empty, D = 0x1F, 32 bytes).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from phe_trace.analytics.keccak import (
    TurboShake128,
    turboshake128,
    turboshake128_batch,
    turboshake128_many,
)

RFC9861_EMPTY_1F_32 = "1e415f1c5983aff2169217277d17bb538cd945a397ddec541f1ce41af2c1b74c"


@pytest.mark.parametrize("length", [0, 1, 167, 168, 169, 400])
def test_24_rounds_is_shake128(length: int) -> None:
    message = bytes(i * 7 % 256 for i in range(length))
    assert turboshake128(message, 0x1F, 500, rounds=24) == hashlib.shake_128(message).digest(500)


def test_rfc9861_empty_message() -> None:
    assert turboshake128(b"", 0x1F, 32).hex() == RFC9861_EMPTY_1F_32


def test_incremental_reads_equal_one_read() -> None:
    stream = TurboShake128(b"abc", 0x01)
    parts = stream.read(5) + stream.read(200) + stream.read(1)
    assert parts == turboshake128(b"abc", 0x01, 206)


@pytest.mark.parametrize("msg_len", [0, 40, 168, 300])
def test_batch_equals_scalar(msg_len: int) -> None:
    rng = np.random.default_rng(msg_len)
    msgs = rng.integers(0, 256, size=(7, msg_len), dtype=np.uint8)
    out = turboshake128_batch(msgs, 0x01, 350)
    for row, msg in zip(out, msgs, strict=True):
        assert bytes(row) == turboshake128(bytes(msg), 0x01, 350)
    shake = turboshake128_batch(msgs, 0x1F, 64, rounds=24)
    assert bytes(shake[3]) == hashlib.shake_128(bytes(msgs[3])).digest(64)


def test_domain_byte_out_of_range() -> None:
    with pytest.raises(ValueError):
        TurboShake128(b"", 0x80)


def test_many_mixed_lengths_equal_scalar() -> None:
    # Lengths around the block boundaries, so rows of one group differ in length, and
    # groups of one (scalar path) sit beside groups large enough for numpy.
    lengths = [0, 1, 100, 166, 167, 168, 169, 200, 335, 336, 337, 3, 50, 60, 70, 80]
    messages = [bytes((i * 31 + k) % 256 for k in range(n)) for i, n in enumerate(lengths)]
    out_lengths = [1 + (i * 97) % 600 for i in range(len(messages))]
    got = turboshake128_many(messages, 0x01, out_lengths)
    for msg, size, row in zip(messages, out_lengths, got, strict=True):
        assert row == turboshake128(msg, 0x01, size)
    shake = turboshake128_many(messages, 0x1F, [64] * len(messages), rounds=24)
    assert shake[7] == hashlib.shake_128(messages[7]).digest(64)
