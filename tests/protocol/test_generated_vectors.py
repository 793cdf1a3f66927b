"""Our own generated vectors, checked by an independent implementation (SPEC META-1, ADV-3)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from phe_trace import crypto
from phe_trace.protocol.advertisement import parse_advertising_data
from tests.vectors import load_vectors

ADV = load_vectors("advertisement_payloads")
META = load_vectors("metadata")


def _hkdf(tek: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=info).derive(tek)


@pytest.mark.parametrize("case", ADV["cases"], ids=lambda c: c["rpi"][:8])
def test_advertisement_vector_independently(case: dict[str, Any]) -> None:
    """KEY-4, KEY-6, ADV-2, ADV-3: recompute every field without phe_trace.crypto."""
    tek = bytes.fromhex(case["tek"])
    interval = case["en_interval_number"]
    block = b"EN-RPI" + bytes(6) + interval.to_bytes(4, "little")
    rpi = Cipher(algorithms.AES(_hkdf(tek, b"EN-RPIK")), modes.ECB()).encryptor().update(block)
    aem = (
        Cipher(algorithms.AES(_hkdf(tek, b"EN-AEMK")), modes.CTR(rpi))
        .encryptor()
        .update(bytes.fromhex(case["metadata"]))
    )
    assert rpi.hex() == case["rpi"] and aem.hex() == case["aem"]
    assert case["service_data"] == (rpi + aem).hex()
    ad = bytes.fromhex("02011a" + "03036ffd" + "17166ffd") + rpi + aem
    assert ad.hex() == case["advertising_data"]
    parsed = parse_advertising_data(ad)
    assert (parsed.rpi, parsed.aem) == (rpi, aem)


@pytest.mark.parametrize("case", META["cases"], ids=lambda c: c["bytes"])
def test_metadata_vector_independently(case: dict[str, Any]) -> None:
    """META-1, META-3: byte 0 from the bit layout, byte 1 two's complement."""
    version = (1 << 6) | (case["version_minor"] << 4)
    if case["version_minor"] >= 1:
        version |= case["calibration_confidence"] << 2
    expected = bytes([version, case["tx_power_dbm"] % 256, 0, 0])
    assert expected.hex() == case["bytes"]
    md = crypto.Metadata.from_bytes(expected)
    assert md.tx_power_dbm == case["tx_power_dbm"]
