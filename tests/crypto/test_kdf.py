"""HKDF-SHA256, the package's one key derivation function (RFC 5869; SPEC KEY-2, KEY-3)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given
from hypothesis import strategies as st

from phe_trace.crypto import CryptoError, InvalidLengthError, hkdf_expand, hkdf_extract, hkdf_sha256

# RFC 5869 Appendix A, test cases 1, 2 and 3 (SHA-256).
RFC5869 = [
    (
        b"\x0b" * 22,
        bytes(range(0x00, 0x0D)),
        bytes(range(0xF0, 0xFA)),
        "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    ),
    (
        bytes(range(0x00, 0x50)),
        bytes(range(0x60, 0xB0)),
        bytes(range(0xB0, 0x100)),
        "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87",
    ),
    (
        b"\x0b" * 22,
        b"",
        b"",
        "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    ),
]


@pytest.mark.parametrize(("ikm", "salt", "info", "prk", "okm"), RFC5869)
def test_rfc5869_vectors(ikm: bytes, salt: bytes, info: bytes, prk: str, okm: str) -> None:
    """KEY-2: HKDF-SHA256 as RFC 5869 defines it, extract and expand apart and together."""
    assert hkdf_extract(ikm, salt).hex() == prk
    assert hkdf_expand(bytes.fromhex(prk), info, len(okm) // 2).hex() == okm
    assert hkdf_sha256(ikm, info, len(okm) // 2, salt=salt).hex() == okm


@given(
    st.binary(max_size=100),
    st.binary(max_size=100),
    st.binary(max_size=40),
    st.integers(min_value=1, max_value=200),
)
def test_equals_cryptography_hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> None:
    """KEY-2, KEY-3: any salt (empty, short, longer than a block), info and length."""
    expected = HKDF(hashes.SHA256(), length, salt or None, info).derive(ikm)
    assert hkdf_sha256(ikm, info, length, salt=salt) == expected


@pytest.mark.parametrize("length", [0, -1, 255 * 32 + 1, True, 1.0])
def test_a_length_outside_the_rfc_range_is_refused(length: object) -> None:
    with pytest.raises(CryptoError, match="length"):
        hkdf_sha256(b"ikm", b"info", length)  # type: ignore[arg-type]


def test_arguments_of_the_wrong_type_or_length_are_refused() -> None:
    with pytest.raises(InvalidLengthError):
        hkdf_expand(bytes(31), b"", 16)
    with pytest.raises(CryptoError, match="ikm"):
        hkdf_sha256("text", b"", 16)  # type: ignore[arg-type]
    with pytest.raises(CryptoError, match="salt"):
        hkdf_extract(b"ikm", None)  # type: ignore[arg-type]
