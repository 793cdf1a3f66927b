"""The protocol's cryptography and time base — phe-trace's "hazmat" layer.

Pure functions, bytes in and bytes out, lengths checked at the door. Imports nothing
else of phe-trace but the root of the exception tree. ``protocol_spec/SPEC.md`` §2–§4, §6.
"""

from .errors import (
    CryptoError,
    IntervalRangeError,
    InvalidLengthError,
    InvalidMetadataError,
    MetadataVersionError,
    SealError,
)
from .kdf import hkdf_expand, hkdf_extract, hkdf_sha256
from .keys import (
    AEM_LENGTH,
    KEY_LENGTH,
    RPI_LENGTH,
    RollingProximityIdentifiers,
    aemk,
    decrypt_metadata,
    encrypt_metadata,
    new_temporary_exposure_key,
    padded_data,
    rpi,
    rpik,
    rpik_and_aemk,
    rpis,
    rpis_bytes,
)
from .metadata import METADATA_LENGTH, CalibrationConfidence, Metadata
from .sealing import SEALING_KEY_LENGTH, SealingKey
from .timebase import (
    INTERVAL_SECONDS,
    MAX_INTERVAL,
    TEK_ROLLING_PERIOD,
    en_interval_number,
    interval_start_seconds,
    rolling_start_interval_number,
)

__all__ = [
    "AEM_LENGTH",
    "INTERVAL_SECONDS",
    "KEY_LENGTH",
    "MAX_INTERVAL",
    "METADATA_LENGTH",
    "RPI_LENGTH",
    "SEALING_KEY_LENGTH",
    "TEK_ROLLING_PERIOD",
    "CalibrationConfidence",
    "CryptoError",
    "IntervalRangeError",
    "InvalidLengthError",
    "InvalidMetadataError",
    "Metadata",
    "MetadataVersionError",
    "RollingProximityIdentifiers",
    "SealError",
    "SealingKey",
    "aemk",
    "decrypt_metadata",
    "en_interval_number",
    "encrypt_metadata",
    "hkdf_expand",
    "hkdf_extract",
    "hkdf_sha256",
    "interval_start_seconds",
    "new_temporary_exposure_key",
    "padded_data",
    "rolling_start_interval_number",
    "rpi",
    "rpik",
    "rpik_and_aemk",
    "rpis",
    "rpis_bytes",
]
