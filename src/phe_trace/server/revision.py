"""Revision tokens: what lets a device later upgrade its keys' report type (PUB-19 … PUB-21).

Wire format as GAEN's key server: the AES-256-GCM encryption (12-byte random nonce
prepended) of the protobuf ``RevisionTokenData{repeated RevisableKey revisable_keys=1}``
with ``RevisableKey{bytes temporaryExposureKey=1; int32 intervalNumber=2;
int32 intervalCount=3}``, wrapped in ``RevisionToken{string kid=1; bytes data=2}`` and
base64-encoded. The additional authenticated data is the configured AAD, so a token of
another deployment never decrypts here. The key id selects one of several keys, so the
key can be rotated while old tokens stay readable.

Every decoding failure raises one opaque
:class:`~phe_trace.server.errors.InvalidRevisionTokenError`.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import InvalidRevisionTokenError
from .files import write_private

__all__ = ["MIN_TOKEN_LENGTH", "RevisableKey", "RevisionKeyRing"]

#: Shortest base64 revision token accepted (GAEN).
MIN_TOKEN_LENGTH = 28
_NONCE = 12


@dataclass(frozen=True, slots=True)
class RevisableKey:
    """A key a token allows to revise, with the metadata it had when first published."""

    key_data: bytes
    interval_number: int
    interval_count: int


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_bytes(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _parse(data: bytes) -> list[tuple[int, int | bytes]]:
    """Fields of a protobuf message; raises on anything malformed."""
    fields: list[tuple[int, int | bytes]] = []
    pos = 0

    def read_varint() -> int:
        nonlocal pos
        value, shift = 0, 0
        while True:
            if pos >= len(data) or shift > 63:
                raise InvalidRevisionTokenError("revision token is invalid")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while pos < len(data):
        tag = read_varint()
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            fields.append((number, read_varint()))
        elif wire == 2:
            length = read_varint()
            if pos + length > len(data):
                raise InvalidRevisionTokenError("revision token is invalid")
            fields.append((number, data[pos : pos + length]))
            pos += length
        else:
            raise InvalidRevisionTokenError("revision token is invalid")
    return fields


def _encode_keys(keys: Iterable[RevisableKey]) -> bytes:
    out = bytearray()
    for key in keys:
        body = (
            _field_bytes(1, key.key_data)
            + _field_varint(2, key.interval_number)
            + _field_varint(3, key.interval_count)
        )
        out += _field_bytes(1, body)
    return bytes(out)


def _decode_keys(data: bytes) -> list[RevisableKey]:
    keys = []
    for number, value in _parse(data):
        if number != 1 or not isinstance(value, bytes):
            continue
        parts = dict(_parse(value))
        key_data, start, count = parts.get(1), parts.get(2, 0), parts.get(3, 0)
        if not isinstance(key_data, bytes) or isinstance(start, bytes) or isinstance(count, bytes):
            raise InvalidRevisionTokenError("revision token is invalid")
        keys.append(RevisableKey(key_data, start, count))
    return keys


class RevisionKeyRing:
    """The AES-GCM keys of revision tokens: the first encrypts, all decrypt."""

    def __init__(self, keys: Sequence[tuple[str, bytes]], aad: bytes) -> None:
        if not keys:
            raise ValueError("at least one revision token key is needed")
        for kid, material in keys:
            if len(material) != 32 or not kid:
                raise ValueError("revision token keys are 32 bytes with a non-empty kid")
        self._keys = {kid: AESGCM(material) for kid, material in keys}
        self._current = keys[0][0]
        self._aad = aad

    @classmethod
    def from_settings_or_file(
        cls, configured: Sequence[str], path: Path, aad: str
    ) -> RevisionKeyRing:
        """Keys from settings (``kid:base64``), else from ``path`` (created, mode 0600)."""
        entries = list(configured)
        if not entries:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                line = f"r1:{base64.b64encode(secrets.token_bytes(32)).decode()}\n"
                write_private(path, line.encode("ascii"))
            entries = [ln.strip() for ln in path.read_text("ascii").splitlines() if ln.strip()]
        pairs = []
        for entry in entries:
            kid, _, material = entry.partition(":")
            pairs.append((kid, base64.b64decode(material)))
        return cls(pairs, aad.encode())

    def encrypt(self, keys: Iterable[RevisableKey]) -> str:
        """A base64 revision token covering ``keys``."""
        nonce = secrets.token_bytes(_NONCE)
        sealed = nonce + self._keys[self._current].encrypt(nonce, _encode_keys(keys), self._aad)
        token = _field_bytes(1, self._current.encode()) + _field_bytes(2, sealed)
        return base64.b64encode(token).decode("ascii")

    def decrypt(self, token: str) -> list[RevisableKey]:
        """The keys a token covers; one opaque error for any problem."""
        if len(token) < MIN_TOKEN_LENGTH:
            raise InvalidRevisionTokenError("revision token is invalid")
        try:
            raw = base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRevisionTokenError("revision token is invalid") from None
        parts = dict(_parse(raw))
        kid, sealed = parts.get(1), parts.get(2)
        if not isinstance(kid, bytes) or not isinstance(sealed, bytes) or len(sealed) < _NONCE:
            raise InvalidRevisionTokenError("revision token is invalid")
        cipher = self._keys.get(kid.decode("utf-8", "replace"))
        if cipher is None:
            raise InvalidRevisionTokenError("revision token is invalid")
        try:
            plain = cipher.decrypt(sealed[:_NONCE], sealed[_NONCE:], self._aad)
        except InvalidTag:
            raise InvalidRevisionTokenError("revision token is invalid") from None
        return _decode_keys(plain)
