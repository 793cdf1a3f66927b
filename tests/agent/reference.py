"""An independent, slow reference of the GAEN key schedule for the agent's tests.

Built from ``cryptography``'s HKDF and AES objects, straight from the GAEN crypto spec
v1.2 (``protocol_spec/SPEC.md`` §3), not from ``phe_trace.crypto``.
"""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _hkdf(tek: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=info).derive(tek)


def ref_rpi(tek: bytes, interval: int) -> bytes:
    padded = b"EN-RPI" + bytes(6) + struct.pack("<I", interval)
    enc = Cipher(algorithms.AES(_hkdf(tek, b"EN-RPIK")), modes.ECB()).encryptor()
    return enc.update(padded) + enc.finalize()


def ref_metadata(tek: bytes, rpi: bytes, aem: bytes) -> bytes:
    dec = Cipher(algorithms.AES(_hkdf(tek, b"EN-AEMK")), modes.CTR(rpi)).decryptor()
    return dec.update(aem) + dec.finalize()


def ref_interval(unix_seconds: float) -> int:
    return int(unix_seconds // 600)
