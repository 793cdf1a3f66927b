"""The plaintext records the agent keeps, and their fixed binary encodings.

Records are encoded here and sealed by :mod:`phe_trace.agent.store`; a sealed record's
associated data names its kind (``tek``, ``sightings``, ``meta/<name>``), so one kind
cannot be passed off as another (SEAL-2).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from phe_trace.crypto import AEM_LENGTH, KEY_LENGTH, RPI_LENGTH

from .errors import StoreError

__all__ = [
    "SightingRecord",
    "StoredKey",
    "decode_sightings",
    "decode_tek",
    "encode_sightings",
    "encode_tek",
    "iter_sighting_fields",
    "sighting_record_size",
]

_TEK = struct.Struct("<16sIH")
#: rpi, aem, first heard (unix s), heard for (s), rssi max, rssi mean, count
_SIGHTING = struct.Struct("<16s4sdfbbH")


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One of the device's own Temporary Exposure Keys."""

    key_data: bytes
    rolling_start_interval_number: int
    rolling_period: int


@dataclass(frozen=True, slots=True)
class SightingRecord:
    """One identifier heard in one scan window, aggregated over that window (AGENT-6).

    ``unix_time`` is when it was first heard in the window, ``duration_s`` how long
    after that it was last heard, ``rssi_max``/``rssi_mean`` the measured RSSI (dBm,
    before calibration) and ``count`` the number of advertisements received.
    """

    rpi: bytes
    aem: bytes
    unix_time: float
    duration_s: float
    rssi_max: int
    rssi_mean: int
    count: int


def encode_tek(key: StoredKey) -> bytes:
    return _TEK.pack(key.key_data, key.rolling_start_interval_number, key.rolling_period)


def decode_tek(data: bytes) -> StoredKey:
    if len(data) != _TEK.size:
        raise StoreError("a stored key record has the wrong length")
    key, start, period = _TEK.unpack(data)
    if len(key) != KEY_LENGTH:
        raise StoreError("a stored key record is malformed")
    return StoredKey(key, start, period)


def _clamp8(value: int) -> int:
    return max(-128, min(127, int(value)))


def encode_sightings(records: list[SightingRecord]) -> bytes:
    """Concatenate fixed-size binary sighting records (one struct each, little-endian)."""
    return b"".join(
        _SIGHTING.pack(
            r.rpi,
            r.aem,
            r.unix_time,
            r.duration_s,
            _clamp8(r.rssi_max),
            _clamp8(r.rssi_mean),
            min(r.count, 0xFFFF),
        )
        for r in records
    )


def sighting_record_size() -> int:
    """Bytes of one encoded sighting record."""
    return _SIGHTING.size


def iter_sighting_fields(data: bytes) -> Iterator[tuple[bytes, bytes, float, float, int, int, int]]:
    """The raw fields of each record: rpi, aem, time, duration, rssi max, rssi mean, count."""
    if len(data) % _SIGHTING.size:
        raise StoreError("a stored sighting record has the wrong length")
    return _SIGHTING.iter_unpack(data)


def decode_sightings(data: bytes) -> list[SightingRecord]:
    if len(data) % _SIGHTING.size:
        raise StoreError("a stored sighting record has the wrong length")
    out = []
    for rpi, aem, t, dur, rmax, rmean, count in _SIGHTING.iter_unpack(data):
        if len(rpi) != RPI_LENGTH or len(aem) != AEM_LENGTH:
            raise StoreError("a stored sighting record is malformed")
        out.append(SightingRecord(rpi, aem, t, dur, rmax, rmean, count))
    return out
