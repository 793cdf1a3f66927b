"""Exposure windows: a key's matched sightings grouped the way GAEN v2 reports them.

``protocol_spec/SPEC.md`` §9 (WIN-1 … WIN-6). Simplifications, said out loud:

* the device's own scan schedule is not an input, so ``seconds_since_last_scan`` is
  measured from the key's previous scan instance (the first one of a key gets the
  2-minute default), in whole minutes, capped at 5 minutes;
* sightings join a scan instance while they are less than 25.5 s (1.5 × (4 + 13) s) after
  the instance's first sighting;
* a window's calibration confidence is the lowest of the receiver's (per sighting) and
  the sender's (from metadata version 1.1 and later) over the window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from phe_trace.crypto import CalibrationConfidence
from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType

from .config import DiagnosisKeysDataMapping
from .model import SECONDS_PER_DAY, ExposureWindow, Infectiousness, Match, ScanInstance

__all__ = ["build_exposure_windows"]

#: A window spans at most 30 minutes from its first sighting (WIN-1).
MAX_WINDOW_SECONDS = 30 * 60
#: Sightings closer than 1.5 × (4 + 13) s to a scan instance's start belong to it (WIN-3).
SCAN_MERGE_SECONDS = 1.5 * (4 + 13)
#: seconds_since_last_scan when no earlier scan is known: 2 minutes (WIN-3).
DEFAULT_SECONDS_SINCE_LAST_SCAN = 120
#: Cap of seconds_since_last_scan: 5 minutes (WIN-3).
MAX_SECONDS_SINCE_LAST_SCAN = 300


@dataclass(slots=True)
class _Seen:
    time: float
    attenuation: int
    confidence: CalibrationConfidence


def _seen(m: Match) -> _Seen | None:
    attenuation = m.attenuation_db
    if attenuation is None or m.metadata is None:
        return None
    confidence = m.sighting.calibration_confidence
    if m.metadata.version_minor >= 1:
        confidence = min(confidence, m.metadata.calibration_confidence)
    return _Seen(float(m.sighting.unix_time), attenuation, CalibrationConfidence(confidence))


def _scan_instances(seen: list[_Seen]) -> list[tuple[float, list[_Seen]]]:
    scans: list[tuple[float, list[_Seen]]] = []
    for s in seen:
        if scans and s.time - scans[-1][0] < SCAN_MERGE_SECONDS:
            scans[-1][1].append(s)
        else:
            scans.append((s.time, [s]))
    return scans


def _summarise(scan: list[_Seen], previous: float | None, start: float) -> ScanInstance:
    attenuations = [s.attenuation for s in scan]
    typical = math.floor(sum(attenuations) / len(attenuations) + 0.5)  # Java Math.round
    if previous is None:
        since = DEFAULT_SECONDS_SINCE_LAST_SCAN
    else:
        minutes = math.floor(start / 60) - math.floor(previous / 60)
        since = 60 * min(MAX_SECONDS_SINCE_LAST_SCAN // 60, max(minutes, 0))
    return ScanInstance(typical, min(attenuations), since)


def _key_windows(
    key: DiagnosisKey, report_type: ReportType, infectiousness: Infectiousness, seen: list[_Seen]
) -> list[ExposureWindow]:
    windows: list[ExposureWindow] = []
    previous: float | None = None
    groups: list[list[tuple[float, list[_Seen]]]] = []
    for scan in _scan_instances(sorted(seen, key=lambda s: s.time)):
        if not groups or scan[0] - groups[-1][0][0] >= MAX_WINDOW_SECONDS:
            groups.append([])
        groups[-1].append(scan)
    for group in groups:
        instances = []
        for start, members in group:
            instances.append(_summarise(members, previous, start))
            previous = start
        window_start = group[0][0]
        windows.append(
            ExposureWindow(
                day=math.floor(window_start / SECONDS_PER_DAY),
                report_type=report_type,
                infectiousness=infectiousness,
                calibration_confidence=min(s.confidence for _, ms in group for s in ms),
                scan_instances=tuple(instances),
                transmission_risk_level=key.transmission_risk_level,
                start_unix_time=window_start,
            )
        )
    return windows


def build_exposure_windows(
    matches: Iterable[Match], mapping: DiagnosisKeysDataMapping
) -> list[ExposureWindow]:
    """Group matches per diagnosis key into exposure windows (WIN-1 … WIN-6).

    Keys whose report type is REVOKED — and every key with the same key data and rolling
    start as a REVOKED one — yield no window (WIN-6); nor do keys whose infectiousness
    maps to NONE (WIN-5), nor matches whose metadata did not decode (WIN-2). UNKNOWN
    report types become ``mapping.report_type_when_missing``. Windows are ordered by start
    time.
    """
    per_key: dict[DiagnosisKey, list[_Seen]] = {}
    revoked: set[tuple[bytes, int]] = set()
    for m in matches:
        key = m.diagnosis_key
        if key.report_type == ReportType.REVOKED:
            revoked.add((key.key_data, key.rolling_start_interval_number))
            continue
        one = _seen(m)
        if one is not None:
            per_key.setdefault(key, []).append(one)
    windows: list[ExposureWindow] = []
    for key, seen in per_key.items():
        if (key.key_data, key.rolling_start_interval_number) in revoked:
            continue
        infectiousness = mapping.infectiousness(key.days_since_onset_of_symptoms)
        if infectiousness == Infectiousness.NONE:
            continue
        report_type = ReportType(key.report_type)
        if report_type == ReportType.UNKNOWN:
            report_type = mapping.report_type_when_missing
        windows.extend(_key_windows(key, report_type, infectiousness, seen))
    windows.sort(key=lambda w: (w.start_unix_time, w.day, int(w.report_type)))
    return windows
