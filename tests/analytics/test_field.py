"""Field helpers checked against the plain element-by-element definitions."""

from __future__ import annotations

import random

import pytest

from phe_trace.analytics.errors import EncodingError
from phe_trace.analytics.field import FIELD64, FIELD128, Field


@pytest.mark.parametrize("field", [FIELD64, FIELD128])
def test_sum_encoded_equals_decode_and_add(field: Field) -> None:
    rng = random.Random(7)
    q = field.modulus
    # Values at the top of the field make the limb sums carry and wrap around q.
    vectors = [
        [rng.choice([q - 1, q - 2, 0, 1, rng.randrange(q)]) for _ in range(5)] for _ in range(300)
    ]
    encoded = [field.encode_vec(v) for v in vectors]
    expected = [0] * 5
    for v in vectors:
        expected = field.vec_add(expected, field.decode_vec(field.encode_vec(v)))
    assert field.sum_encoded(encoded, 5) == expected
    assert field.sum_encoded([], 5) == [0] * 5


@pytest.mark.parametrize("field", [FIELD64, FIELD128])
def test_sum_encoded_refuses_what_decode_refuses(field: Field) -> None:
    """AGG-3: a decoder refuses an element not below the modulus — the modulus itself
    included — and a ragged length; p − 1 decodes; the summing path refuses the same."""
    size = field.encoded_size
    assert field.decode_vec((field.modulus - 1).to_bytes(size, "little")) == [field.modulus - 1]
    with pytest.raises(EncodingError):
        field.sum_encoded([bytes(3 * size), bytes(2 * size)], 3)
    for bad in (field.modulus, 2 ** (8 * size) - 1, field.modulus + 2**64):
        if bad >= 2 ** (8 * size):
            continue
        with pytest.raises(EncodingError):
            field.decode_vec(bad.to_bytes(size, "little"))
        with pytest.raises(EncodingError):
            field.sum_encoded([bytes(size), bad.to_bytes(size, "little")], 1)
