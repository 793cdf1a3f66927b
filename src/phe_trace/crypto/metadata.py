"""Associated metadata: the 4 plaintext bytes carried (encrypted) in every advertisement.

``protocol_spec/SPEC.md`` §4 (requirements META-1 … META-4). Layout::

    byte 0  version: bits 7:6 major (01), bits 5:4 minor,
            v1.1 also bits 3:2 calibration confidence, bits 1:0 reserved
    byte 1  transmit power in dBm, signed int8
    byte 2  reserved (0)
    byte 3  reserved (0)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .errors import InvalidLengthError, InvalidMetadataError, MetadataVersionError

__all__ = ["METADATA_LENGTH", "CalibrationConfidence", "Metadata"]

#: Length of the associated metadata in bytes (META-1).
METADATA_LENGTH = 4
#: The only major version defined (META-2).
_MAJOR_VERSION = 1


class CalibrationConfidence(IntEnum):
    """How well the sender's transmit power is calibrated (GAEN enum)."""

    LOWEST = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3


@dataclass(frozen=True, slots=True)
class Metadata:
    """Associated metadata, version 1.0 or 1.1.

    ``calibration_confidence`` is only encoded from minor version 1 on; a 1.0 record
    reads back as ``LOWEST``.
    """

    tx_power_dbm: int = 0
    version_minor: int = 0
    calibration_confidence: CalibrationConfidence = CalibrationConfidence.LOWEST
    version_major: int = _MAJOR_VERSION

    def __post_init__(self) -> None:
        if self.version_major != _MAJOR_VERSION:
            raise MetadataVersionError(
                f"metadata major version must be {_MAJOR_VERSION}, got {self.version_major}"
            )
        if not 0 <= self.version_minor <= 3:
            raise MetadataVersionError(
                f"metadata minor version must be 0..3, got {self.version_minor}"
            )
        if not -128 <= self.tx_power_dbm <= 127:
            raise InvalidMetadataError(f"tx_power_dbm must be -128..127, got {self.tx_power_dbm}")
        object.__setattr__(
            self, "calibration_confidence", CalibrationConfidence(self.calibration_confidence)
        )

    def to_bytes(self) -> bytes:
        """The 4-byte plaintext metadata (META-1, META-3)."""
        version = (self.version_major << 6) | (self.version_minor << 4)
        if self.version_minor >= 1:
            version |= (int(self.calibration_confidence) << 2) & 0x0C
        return bytes((version, self.tx_power_dbm & 0xFF, 0, 0))

    @classmethod
    def from_bytes(cls, data: bytes) -> Metadata:
        """Parse 4 plaintext bytes; unknown major versions are refused (META-2)."""
        if not isinstance(data, bytes | bytearray) or len(data) != METADATA_LENGTH:
            raise InvalidLengthError("metadata", data, METADATA_LENGTH)
        major = data[0] >> 6
        if major != _MAJOR_VERSION:
            raise MetadataVersionError(f"unsupported metadata major version {major}")
        minor = (data[0] >> 4) & 0x03
        confidence = (data[0] >> 2) & 0x03 if minor >= 1 else 0
        tx_power = data[1] - 256 if data[1] >= 128 else data[1]
        return cls(
            tx_power_dbm=tx_power,
            version_minor=minor,
            calibration_confidence=CalibrationConfidence(confidence),
        )
