"""Associated metadata encoding (SPEC META-1 … META-4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phe_trace.crypto import (
    CalibrationConfidence,
    InvalidLengthError,
    InvalidMetadataError,
    Metadata,
    MetadataVersionError,
)


@given(
    st.integers(min_value=-128, max_value=127),
    st.integers(min_value=0, max_value=3),
    st.sampled_from(list(CalibrationConfidence)),
)
def test_round_trip(tx: int, minor: int, confidence: CalibrationConfidence) -> None:
    """META-1, META-3: to_bytes/from_bytes round-trip; confidence only from minor 1 on."""
    md = Metadata(tx_power_dbm=tx, version_minor=minor, calibration_confidence=confidence)
    raw = md.to_bytes()
    assert len(raw) == 4 and raw[2:] == b"\x00\x00"
    back = Metadata.from_bytes(raw)
    assert back.tx_power_dbm == tx
    assert back.version_minor == minor
    expected = confidence if minor >= 1 else CalibrationConfidence.LOWEST
    assert back.calibration_confidence == expected


def test_known_encodings_from_gaen_bluetooth_spec() -> None:
    """META-1, META-3: v1.0 is 0x40; v1.1 is 0x50 | confidence<<2; TX power is int8."""
    assert Metadata(tx_power_dbm=8).to_bytes() == bytes.fromhex("40080000")
    assert Metadata(tx_power_dbm=-15).to_bytes() == bytes.fromhex("40f10000")
    v11 = Metadata(
        tx_power_dbm=-1, version_minor=1, calibration_confidence=CalibrationConfidence.HIGH
    )
    assert v11.to_bytes() == bytes.fromhex("5cff0000")
    assert Metadata.from_bytes(bytes.fromhex("58ec0000")) == Metadata(
        tx_power_dbm=-20, version_minor=1, calibration_confidence=CalibrationConfidence.MEDIUM
    )


@pytest.mark.parametrize("first", [0x00, 0x80, 0xC0, 0x3F])
def test_unknown_major_version_is_refused(first: int) -> None:
    """META-2."""
    with pytest.raises(MetadataVersionError):
        Metadata.from_bytes(bytes((first, 0, 0, 0)))


def test_bad_lengths_and_values() -> None:
    """META-1, META-4."""
    with pytest.raises(InvalidLengthError, match="metadata must be 4 bytes, got 3 bytes"):
        Metadata.from_bytes(b"\x40\x00\x00")
    with pytest.raises(InvalidMetadataError, match="tx_power_dbm"):
        Metadata(tx_power_dbm=128)
    with pytest.raises(MetadataVersionError):
        Metadata(version_major=2)
