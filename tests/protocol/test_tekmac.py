"""TEK HMAC known answers of the verification protocol (SPEC HMAC-1 … HMAC-3)."""

from __future__ import annotations

import base64

import pytest

from phe_trace.protocol.errors import TekHmacError
from phe_trace.protocol.tekmac import (
    TekHmacKey,
    decode_base64,
    tek_hmac,
    tek_hmac_cleartext,
    verify_tek_hmac,
)
from tests.vectors import load_vectors

V = load_vectors("gaen_tek_hmac")
HMAC_KEY = bytes.fromhex(V["hmac_key"])


def _keys(case: dict[str, object]) -> list[TekHmacKey]:
    return [
        TekHmacKey(
            key=base64.b64decode(k["key"]),
            rolling_start_number=k["rollingStartNumber"],
            rolling_period=k["rollingPeriod"],
            transmission_risk=k["transmissionRisk"],
        )
        for k in case["keys"]  # type: ignore[attr-defined]
    ]


@pytest.mark.parametrize("case", V["cases"], ids=lambda c: c["name"])
def test_known_answers(case: dict[str, object]) -> None:
    """HMAC-2: cleartext and MAC reproduce the key server's known answers."""
    keys = _keys(case)
    expected = base64.b64decode(str(case["hmac"]))
    include_risk = case["form"] == "4-field"
    assert tek_hmac_cleartext(keys, include_risk=include_risk).decode() == case["cleartext"]
    if include_risk:
        assert tek_hmac(HMAC_KEY, keys) == expected
    assert verify_tek_hmac(HMAC_KEY, keys, expected)


def test_three_field_form_only_when_all_risks_are_zero() -> None:
    """HMAC-3: the legacy 3-field MAC is refused once any transmission risk is non-zero."""
    legacy = next(c for c in V["cases"] if c["form"] == "3-field")
    keys = _keys(legacy)
    mac = base64.b64decode(legacy["hmac"])
    risky = [TekHmacKey(k.key, k.rolling_start_number, k.rolling_period, 1) for k in keys]
    assert verify_tek_hmac(HMAC_KEY, keys, mac)
    assert not verify_tek_hmac(HMAC_KEY, risky, mac)


def test_mismatch_and_short_key() -> None:
    """HMAC-1, HMAC-3."""
    keys = _keys(V["cases"][0])
    mac = tek_hmac(HMAC_KEY, keys)
    assert not verify_tek_hmac(HMAC_KEY, keys[:1], mac)
    assert not verify_tek_hmac(HMAC_KEY[:15], keys, mac)
    with pytest.raises(TekHmacError, match="at least 16 bytes"):
        tek_hmac(HMAC_KEY[:8], keys)


def test_base64_forms_accepted_by_the_key_server() -> None:
    """HMAC-1: standard and URL-safe, padded or not; garbage is a clear error."""
    raw = bytes(range(250, 256)) + b"\xfb\xff"
    for text in (
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ):
        assert decode_base64(text, name="hmacKey") == raw
    with pytest.raises(TekHmacError, match="hmacKey is not valid base64"):
        decode_base64("not base64!", name="hmacKey")
