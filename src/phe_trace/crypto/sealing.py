"""At-rest sealing for the device store.

``protocol_spec/SPEC.md`` §6 (requirements SEAL-1 … SEAL-4). XChaCha20-Poly1305 (IETF
AEAD, libsodium via pynacl) with a random 24-byte nonce per record and associated data
naming the record kind, so a sealed sighting cannot be passed off as a sealed key. The
sealing key is 32 random bytes in a file created with mode 0600.

Record layout: ``version (1 byte, 0x01) ‖ nonce (24 bytes) ‖ ciphertext ‖ tag (16 bytes)``.
Any failure to open (wrong key, tampering, other kind, truncation) raises the one opaque
:class:`SealError`.
"""

from __future__ import annotations

import os
from pathlib import Path

from nacl import bindings
from nacl.exceptions import CryptoError as _NaclCryptoError
from nacl.utils import random as _random

from .errors import InvalidLengthError, SealError

__all__ = ["SEALING_KEY_LENGTH", "SealingKey"]

#: Length of the at-rest sealing key in bytes (SEAL-1).
SEALING_KEY_LENGTH = bindings.crypto_aead_xchacha20poly1305_ietf_KEYBYTES
_NONCE_LENGTH = bindings.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
_TAG_LENGTH = bindings.crypto_aead_xchacha20poly1305_ietf_ABYTES
_FORMAT_VERSION = b"\x01"
_AAD_PREFIX = b"phe-trace/seal/v1/"


class SealingKey:
    """A 32-byte key that seals and opens records of a named kind."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != SEALING_KEY_LENGTH:
            raise InvalidLengthError("sealing key", key, SEALING_KEY_LENGTH)
        self._key = key

    def __repr__(self) -> str:
        return "SealingKey(<secret>)"

    @classmethod
    def generate(cls) -> SealingKey:
        """A new random key from the OS CSPRNG."""
        return cls(_random(SEALING_KEY_LENGTH))

    @classmethod
    def load_or_create(cls, path: Path) -> SealingKey:
        """Read the key file at ``path``; create it (mode 0600, exclusively) if absent (SEAL-1)."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls(path.read_bytes())
        key = cls.generate()
        with os.fdopen(fd, "wb") as f:
            f.write(key._key)
            f.flush()
            os.fsync(f.fileno())
        return key

    @staticmethod
    def _aad(kind: str) -> bytes:
        return _AAD_PREFIX + kind.encode("utf-8")

    def seal(self, kind: str, plaintext: bytes) -> bytes:
        """Encrypt and authenticate ``plaintext`` as a record of ``kind`` (SEAL-2)."""
        nonce = _random(_NONCE_LENGTH)
        ciphertext = bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, self._aad(kind), nonce, self._key
        )
        return _FORMAT_VERSION + nonce + ciphertext

    def open(self, kind: str, sealed: bytes) -> bytes:
        """Decrypt a record sealed as ``kind``; any failure raises :class:`SealError` (SEAL-3)."""
        if (
            not isinstance(sealed, bytes)
            or len(sealed) < 1 + _NONCE_LENGTH + _TAG_LENGTH
            or sealed[:1] != _FORMAT_VERSION
        ):
            raise SealError()
        nonce = sealed[1 : 1 + _NONCE_LENGTH]
        try:
            return bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                sealed[1 + _NONCE_LENGTH :], self._aad(kind), nonce, self._key
            )
        except _NaclCryptoError:
            raise SealError() from None
