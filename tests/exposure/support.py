"""Test helpers: sightings of a key's identifiers built with the one-identifier primitives.

Everything here uses ``crypto.rpi`` (one AES call per identifier) and
``crypto.encrypt_metadata`` directly, never the batch path the matcher uses.
"""

from __future__ import annotations

from phe_trace import crypto
from phe_trace.crypto import CalibrationConfidence, Metadata
from phe_trace.exposure import Sighting
from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType

DAY0 = 2_642_976  # 2020-04-02 00:00 UTC, a day-aligned interval


def key(
    seed: int,
    start: int = DAY0,
    period: int = 144,
    *,
    report_type: ReportType = ReportType.CONFIRMED_TEST,
    trl: int = 6,
    dsos: int | None = 0,
) -> DiagnosisKey:
    tek = bytes([seed % 256]) * 8 + seed.to_bytes(8, "big")
    return DiagnosisKey(tek, start, period, trl, report_type, dsos)


def sighting_of(
    k: DiagnosisKey,
    interval: int,
    *,
    at_interval: int | None = None,
    offset_seconds: float = 30,
    rssi: int = -60,
    tx_power: int = -10,
    rssi_correction: int = 0,
    confidence: CalibrationConfidence = CalibrationConfidence.HIGH,
    metadata: bytes | None = None,
) -> Sighting:
    """A sighting of ``k``'s identifier of ``interval``, heard during ``at_interval``."""
    rpi = crypto.rpi(crypto.rpik(k.key_data), interval)
    plain = metadata if metadata is not None else Metadata(tx_power_dbm=tx_power).to_bytes()
    aem = crypto.encrypt_metadata(crypto.aemk(k.key_data), rpi, plain)
    when = (interval if at_interval is None else at_interval) * 600 + offset_seconds
    return Sighting(rpi, aem, rssi, when, rssi_correction, confidence)
