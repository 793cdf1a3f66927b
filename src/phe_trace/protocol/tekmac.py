"""The TEK HMAC of the verification protocol: binds a certificate to the uploaded keys.

``protocol_spec/SPEC.md`` §7 (requirements HMAC-1 … HMAC-3). The device picks a random
HMAC key (≥ 128 bits), computes the HMAC over its keys, obtains a certificate carrying
that HMAC (``tekmac``) from the verification service, and sends the HMAC key with the
keys to the key server, which recomputes and compares. The verification service never
sees the keys; the key server never learns who the person is.

Cleartext: for each key ``base64std(key) "." rollingStartNumber "." rollingPeriod "."
transmissionRisk`` (decimal integers); the strings sorted lexicographically and joined
with ``","``; HMAC-SHA256 over it. A legacy 3-field form (without transmissionRisk) is
accepted only when every transmission risk is 0.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from phe_trace.crypto import KEY_LENGTH

from .errors import TekHmacError

__all__ = [
    "MIN_HMAC_KEY_LENGTH",
    "TEK_HMAC_LENGTH",
    "TekHmacKey",
    "decode_base64",
    "tek_hmac",
    "tek_hmac_cleartext",
    "verify_tek_hmac",
]

#: Minimum length of the device's HMAC key in bytes: 128 bits (HMAC-1).
MIN_HMAC_KEY_LENGTH = 16
#: Length of the HMAC-SHA256 output in bytes.
TEK_HMAC_LENGTH = 32


@dataclass(frozen=True, slots=True)
class TekHmacKey:
    """The fields of one uploaded key that the TEK HMAC covers."""

    key: bytes
    rolling_start_number: int
    rolling_period: int
    transmission_risk: int = 0


def decode_base64(value: str, *, name: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not, as the key server accepts it."""
    if not isinstance(value, str):
        raise TekHmacError(f"{name} must be a base64 string")
    text = value.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise TekHmacError(f"{name} is not valid base64") from None


def tek_hmac_cleartext(keys: Iterable[TekHmacKey], *, include_risk: bool = True) -> bytes:
    """The string the HMAC is computed over (HMAC-2)."""
    parts: list[str] = []
    for k in keys:
        if len(k.key) != KEY_LENGTH:
            raise TekHmacError(f"key must be {KEY_LENGTH} bytes, got {len(k.key)} bytes")
        fields = [
            base64.b64encode(k.key).decode("ascii"),
            str(int(k.rolling_start_number)),
            str(int(k.rolling_period)),
        ]
        if include_risk:
            fields.append(str(int(k.transmission_risk)))
        parts.append(".".join(fields))
    parts.sort()
    return ",".join(parts).encode("ascii")


def tek_hmac(hmac_key: bytes, keys: Iterable[TekHmacKey]) -> bytes:
    """HMAC-SHA256 over the 4-field cleartext of ``keys`` with the device's key (HMAC-2)."""
    if len(hmac_key) < MIN_HMAC_KEY_LENGTH:
        raise TekHmacError(
            f"hmac key must be at least {MIN_HMAC_KEY_LENGTH} bytes, got {len(hmac_key)} bytes"
        )
    return hmac.digest(hmac_key, tek_hmac_cleartext(keys), "sha256")


def verify_tek_hmac(hmac_key: bytes, keys: Iterable[TekHmacKey], expected: bytes) -> bool:
    """Recompute the TEK HMAC and compare it in constant time (HMAC-3).

    The legacy 3-field form is also accepted when every transmission risk is 0.
    """
    key_list = list(keys)
    if len(hmac_key) < MIN_HMAC_KEY_LENGTH:
        return False
    primary = hmac.digest(hmac_key, tek_hmac_cleartext(key_list), "sha256")
    if hmac.compare_digest(primary, expected):
        return True
    if all(k.transmission_risk == 0 for k in key_list):
        legacy = hmac.digest(hmac_key, tek_hmac_cleartext(key_list, include_risk=False), "sha256")
        return hmac.compare_digest(legacy, expected)
    return False
