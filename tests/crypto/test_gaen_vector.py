"""The official GAEN v1.2 key-schedule vector, bit for bit (SPEC KEY-2 … KEY-6, TIME-1, TIME-3)."""

from __future__ import annotations

import pytest

from phe_trace import crypto
from tests.vectors import load_vectors

V = load_vectors("gaen_v1_2_key_schedule")
TEK = bytes.fromhex(V["tek"])


def test_interval_number_of_key_generation_time() -> None:
    """TIME-1, TIME-3: the vector's generation time maps to its rolling start."""
    interval = crypto.en_interval_number(V["key_generation_unix_seconds"])
    assert interval == V["rolling_start_interval_number"]
    assert crypto.rolling_start_interval_number(interval + 143) == interval


def test_rpik_and_aemk() -> None:
    """KEY-2, KEY-3."""
    assert crypto.rpik(TEK).hex() == V["rpik"]
    assert crypto.aemk(TEK).hex() == V["aemk"]


@pytest.mark.parametrize("case", V["cases"], ids=lambda c: str(c["en_interval_number"]))
def test_each_rpi_and_aem(case: dict[str, object]) -> None:
    """KEY-4, KEY-6: every one of the 144 RPI/AEM pairs and its PaddedData."""
    interval = int(str(case["en_interval_number"]))
    assert crypto.padded_data(interval).hex() == case["padded_data"]
    rpi = crypto.rpi(bytes.fromhex(V["rpik"]), interval)
    assert rpi.hex() == case["rpi"]
    aem = crypto.encrypt_metadata(bytes.fromhex(V["aemk"]), rpi, bytes.fromhex(V["metadata"]))
    assert aem.hex() == case["aem"]
    assert crypto.decrypt_metadata(bytes.fromhex(V["aemk"]), rpi, aem).hex() == V["metadata"]


def test_all_identifiers_in_one_call() -> None:
    """KEY-5: rpis() yields the vector's 144 identifiers in order."""
    ids = crypto.rpis(crypto.rpik(TEK), V["rolling_start_interval_number"])
    assert [x.hex() for x in ids] == [c["rpi"] for c in V["cases"]]
    assert ids.data.hex() == "".join(c["rpi"] for c in V["cases"])


def test_vector_metadata_decodes() -> None:
    """META-1: the vector's metadata is version 1.0 with +8 dBm."""
    md = crypto.Metadata.from_bytes(bytes.fromhex(V["metadata"]))
    assert (md.version_major, md.version_minor, md.tx_power_dbm) == (1, 0, 8)
    assert md.to_bytes().hex() == V["metadata"]
