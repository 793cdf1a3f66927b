"""Key schedule properties and argument checking (SPEC KEY-1 … KEY-7, TIME-1 … TIME-4)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given
from hypothesis import strategies as st

from phe_trace import crypto
from phe_trace.crypto import IntervalRangeError, InvalidLengthError
from phe_trace.errors import PheTraceError

keys16 = st.binary(min_size=16, max_size=16)
intervals = st.integers(min_value=0, max_value=crypto.MAX_INTERVAL - 143)


def _reference_hkdf(tek: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=info).derive(tek)


@given(keys16)
def test_hkdf_shortcut_equals_rfc5869_hkdf(tek: bytes) -> None:
    """KEY-2, KEY-3: the two-HMAC derivation equals cryptography's HKDF."""
    assert crypto.rpik(tek) == _reference_hkdf(tek, b"EN-RPIK")
    assert crypto.aemk(tek) == _reference_hkdf(tek, b"EN-AEMK")


@given(keys16, intervals, st.integers(min_value=1, max_value=144))
def test_rpis_equals_rpi_per_interval(rpik: bytes, start: int, count: int) -> None:
    """KEY-5: the one-call derivation equals one rpi() per interval."""
    ids = crypto.rpis(rpik, start, count)
    assert len(ids) == count
    assert list(ids) == [crypto.rpi(rpik, j) for j in range(start, start + count)]
    assert ids[-1] == crypto.rpi(rpik, start + count - 1)
    assert ids.interval_of(count - 1) == start + count - 1


@given(keys16, st.integers(min_value=0, max_value=crypto.MAX_INTERVAL))
def test_rpi_is_aes_of_padded_data(rpik: bytes, interval: int) -> None:
    """KEY-4: RPI = AES-128(RPIK, "EN-RPI" ‖ 0x00×6 ‖ uint32-LE(interval)), built independently."""
    block = b"EN-RPI" + b"\x00" * 6 + interval.to_bytes(4, "little")
    expected = Cipher(algorithms.AES(rpik), modes.ECB()).encryptor().update(block)
    assert crypto.rpi(rpik, interval) == expected


@given(keys16, keys16, st.binary(min_size=4, max_size=4))
def test_metadata_encryption_round_trip(aemk: bytes, rpi: bytes, metadata: bytes) -> None:
    """KEY-6, KEY-7: AEM decrypts back to the metadata; CTR with the RPI as counter block."""
    aem = crypto.encrypt_metadata(aemk, rpi, metadata)
    assert len(aem) == 4
    assert crypto.decrypt_metadata(aemk, rpi, aem) == metadata
    keystream = Cipher(algorithms.AES(aemk), modes.ECB()).encryptor().update(rpi)[:4]
    assert aem == bytes(a ^ b for a, b in zip(metadata, keystream, strict=True))


def test_new_keys_are_random_16_bytes() -> None:
    """KEY-1."""
    keys = {crypto.new_temporary_exposure_key() for _ in range(64)}
    assert len(keys) == 64
    assert all(len(k) == 16 for k in keys)


@pytest.mark.parametrize(
    ("call", "argument", "expected"),
    [
        (lambda: crypto.rpik(b"x" * 15), "tek", 16),
        (lambda: crypto.aemk(b"x" * 17), "tek", 16),
        (lambda: crypto.rpi(b"", 0), "rpik", 16),
        (lambda: crypto.rpis(b"x" * 32, 0), "rpik", 16),
        (lambda: crypto.encrypt_metadata(b"k" * 16, b"r" * 15, b"mmmm"), "rpi", 16),
        (lambda: crypto.encrypt_metadata(b"k" * 16, b"r" * 16, b"mmm"), "metadata", 4),
        (lambda: crypto.decrypt_metadata(b"k" * 16, b"r" * 16, b"aaaaa"), "aem", 4),
        (lambda: crypto.decrypt_metadata(b"k" * 8, b"r" * 16, b"aaaa"), "aemk", 16),
    ],
)
def test_wrong_lengths_name_argument_and_lengths(call, argument: str, expected: int) -> None:  # type: ignore[no-untyped-def]
    """KEY-1: wrong lengths raise a specific error naming the argument and both lengths."""
    with pytest.raises(InvalidLengthError) as info:
        call()
    assert info.value.argument == argument
    assert argument in str(info.value)
    assert f"must be {expected} bytes" in str(info.value)
    assert isinstance(info.value, PheTraceError)


def test_non_bytes_key_is_refused_clearly() -> None:
    """KEY-1: a str where bytes belong is a length error, not a TypeError from OpenSSL."""
    with pytest.raises(InvalidLengthError, match="tek must be 16 bytes, got a str"):
        crypto.rpik("75c734c6dd1a782de7a965da5eb93125")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("start", "count"),
    [(-1, 144), (2**32, 1), (0, 0), (0, 145), (2**32 - 10, 144), (2**32 - 143, 144), (1.5, 144)],
)
def test_interval_ranges_are_checked(start: int, count: int) -> None:
    """TIME-2, KEY-5: intervals are uint32; counts are 1..144 and may not overflow."""
    with pytest.raises(IntervalRangeError):
        crypto.rpis(b"k" * 16, start, count)


def test_a_range_may_end_exactly_at_the_last_interval() -> None:
    """KEY-5: 144 identifiers ending at interval 2^32 − 1 are derived; one more overflows."""
    last = crypto.MAX_INTERVAL
    ids = crypto.rpis(b"k" * 16, last - 143, 144)
    assert ids[-1] == crypto.rpi(b"k" * 16, last)
    with pytest.raises(IntervalRangeError):
        crypto.rpis(b"k" * 16, last - 142, 144)


def test_time_base() -> None:
    """TIME-1 … TIME-4: floor(t/600), uint32, day starts on multiples of 144."""
    assert crypto.en_interval_number(0) == 0
    assert crypto.en_interval_number(599.999) == 0
    assert crypto.en_interval_number(600) == 1
    assert crypto.en_interval_number(1585785600) == 1585785600 // 600
    assert crypto.rolling_start_interval_number(2642976 + 143) == 2642976
    assert crypto.rolling_start_interval_number(2642976 + 144) == 2642976 + 144
    assert crypto.interval_start_seconds(2642976) == 1585785600
    assert crypto.en_interval_number(600 * (2**32 - 1)) == 2**32 - 1
    for bad in (-1, float("nan"), float("inf"), 600 * 2**32):
        with pytest.raises(IntervalRangeError):
            crypto.en_interval_number(bad)
    with pytest.raises(IntervalRangeError):
        crypto.rolling_start_interval_number(-5)
