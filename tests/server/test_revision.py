"""Revision tokens: AES-GCM with key id and AAD (SPEC PUB-19)."""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from phe_trace.server.errors import InvalidRevisionTokenError
from phe_trace.server.revision import RevisableKey, RevisionKeyRing

K1, K2 = secrets.token_bytes(32), secrets.token_bytes(32)
KEYS = [RevisableKey(secrets.token_bytes(16), 2_990_000 - 144 * i, 144) for i in range(14)]


def _varint(v: int) -> bytes:
    out = b""
    while v > 0x7F:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def test_round_trip_and_wire_format() -> None:
    """The token is RevisionToken{kid, data=nonce‖AES-GCM(RevisionTokenData)} (PUB-19)."""
    ring = RevisionKeyRing([("k1", K1)], b"aad")
    token = ring.encrypt(KEYS)
    assert ring.decrypt(token) == KEYS
    raw = base64.b64decode(token)
    assert raw[:4] == b"\x0a\x02k1"  # field 1 (kid), length 2
    assert raw[4] == 0x12  # field 2 (data), length-delimited
    # independent decryption with the raw AES-GCM primitive
    length_end = 5
    while raw[length_end] & 0x80:
        length_end += 1
    sealed = raw[length_end + 1 :]
    plain = AESGCM(K1).decrypt(sealed[:12], sealed[12:], b"aad")
    first = KEYS[0]
    body = (
        b"\x0a\x10"
        + first.key_data
        + b"\x10"
        + _varint(first.interval_number)
        + b"\x18"
        + _varint(144)
    )
    assert plain.startswith(b"\x0a" + _varint(len(body)) + body)


def test_tampering_wrong_aad_and_unknown_kid() -> None:
    """Any change, another AAD or another key id gives one opaque error (PUB-19)."""
    ring = RevisionKeyRing([("k1", K1)], b"aad")
    token = bytearray(base64.b64decode(ring.encrypt(KEYS)))
    token[-1] ^= 1
    for bad in (base64.b64encode(bytes(token)).decode(), "A" * 27, "!" * 40, "A" * 40):
        with pytest.raises(InvalidRevisionTokenError):
            ring.decrypt(bad)
    with pytest.raises(InvalidRevisionTokenError):
        RevisionKeyRing([("k1", K1)], b"other").decrypt(ring.encrypt(KEYS))
    with pytest.raises(InvalidRevisionTokenError):
        RevisionKeyRing([("k2", K1)], b"aad").decrypt(ring.encrypt(KEYS))


def test_rotation_keeps_old_tokens_readable() -> None:
    """After rotation new tokens use the new kid and old ones still decrypt."""
    old = RevisionKeyRing([("k1", K1)], b"aad").encrypt(KEYS)
    ring = RevisionKeyRing([("k2", K2), ("k1", K1)], b"aad")
    assert ring.decrypt(old) == KEYS
    assert base64.b64decode(ring.encrypt(KEYS))[2:4] == b"k2"


def test_key_file_created_private(tmp_path: Path) -> None:
    """Without configured keys a key file is created once with mode 0600."""
    path = tmp_path / "revision-token.keys"
    ring = RevisionKeyRing.from_settings_or_file([], path, "aad")
    assert path.stat().st_mode & 0o777 == 0o600
    again = RevisionKeyRing.from_settings_or_file([], path, "aad")
    assert again.decrypt(ring.encrypt(KEYS)) == KEYS
