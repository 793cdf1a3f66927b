"""At-rest sealing of the device store (SPEC SEAL-1 … SEAL-4)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl import bindings

from phe_trace.crypto import InvalidLengthError, SealError, SealingKey


def test_key_file_is_created_0600_and_reloaded(tmp_path: Path) -> None:
    """SEAL-1: the key file is created with mode 0600 and reused afterwards."""
    path = tmp_path / "store.key"
    key = SealingKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_bytes()) == 32
    sealed = key.seal("sighting", b"hello")
    assert SealingKey.load_or_create(path).open("sighting", sealed) == b"hello"


@given(st.binary(max_size=300), st.text(min_size=1, max_size=20))
def test_round_trip_with_random_nonces(plaintext: bytes, kind: str) -> None:
    """SEAL-2: records round-trip; sealing twice gives different ciphertexts."""
    key = SealingKey.generate()
    a, b = key.seal(kind, plaintext), key.seal(kind, plaintext)
    assert a != b
    assert key.open(kind, a) == plaintext == key.open(kind, b)
    assert len(plaintext) < 8 or plaintext not in a


def test_record_layout_is_xchacha20poly1305_with_kind_as_aad() -> None:
    """SEAL-2: version ‖ nonce ‖ XChaCha20-Poly1305(ct ‖ tag), AAD naming the kind."""
    raw = bytes(range(32))
    sealed = SealingKey(raw).seal("tek", b"secret")
    assert sealed[0] == 1
    nonce, body = sealed[1:25], sealed[25:]
    plain = bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
        body, b"phe-trace/seal/v1/tek", nonce, raw
    )
    assert plain == b"secret"


def test_every_failure_is_the_same_opaque_error() -> None:
    """SEAL-3: wrong key, other kind, tampering and truncation all raise one SealError."""
    key, other = SealingKey.generate(), SealingKey.generate()
    sealed = key.seal("sighting", b"payload")
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    attempts = [
        lambda: other.open("sighting", sealed),
        lambda: key.open("tek", sealed),
        lambda: key.open("sighting", bytes(tampered)),
        lambda: key.open("sighting", sealed[:20]),
        lambda: key.open("sighting", b"\x02" + sealed[1:]),
    ]
    messages = set()
    for attempt in attempts:
        with pytest.raises(SealError) as info:
            attempt()
        messages.add(str(info.value))
    assert messages == {"sealed data could not be opened"}


def test_key_length_checked_and_not_shown() -> None:
    """SEAL-4: keys are 32 bytes and never appear in repr."""
    with pytest.raises(InvalidLengthError):
        SealingKey(b"short")
    assert "secret" in repr(SealingKey.generate())
