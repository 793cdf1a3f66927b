"""Exposure windows from matches (SPEC WIN-1 … WIN-6); expectations worked out by hand."""

from __future__ import annotations

import dataclasses

from phe_trace.crypto import CalibrationConfidence, Metadata
from phe_trace.exposure import (
    DiagnosisKeysDataMapping,
    ExposureWindow,
    Infectiousness,
    Match,
    ScanInstance,
    Sighting,
    build_exposure_windows,
    default_config,
    match,
)
from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType

from .support import DAY0, key, sighting_of

T0 = DAY0 * 600  # 2020-04-02 00:00:00 UTC
MAPPING = DiagnosisKeysDataMapping(
    days_since_onset_to_infectiousness=tuple(
        Infectiousness.HIGH if d == 0 else Infectiousness.STANDARD for d in range(-14, 15)
    ),
    infectiousness_when_days_since_onset_missing=Infectiousness.STANDARD,
    report_type_when_missing=ReportType.CONFIRMED_CLINICAL_DIAGNOSIS,
)


def m(
    k: DiagnosisKey,
    t: float,
    rssi: int = -60,
    tx: int = -10,
    *,
    correction: int = 0,
    receiver: CalibrationConfidence = CalibrationConfidence.HIGH,
    sender: CalibrationConfidence = CalibrationConfidence.HIGH,
    minor: int = 1,
) -> Match:
    s = Sighting(b"\x00" * 16, b"\x00" * 4, rssi, t, correction, receiver)
    meta = Metadata(tx_power_dbm=tx, version_minor=minor, calibration_confidence=sender)
    return Match(k, s, int(t // 600), meta)


def test_attenuation_is_tx_power_minus_corrected_rssi_clamped_at_zero() -> None:
    """WIN-2: max(tx − (rssi + correction), 0)."""
    k = key(1)
    assert m(k, T0, rssi=-70, tx=-8, correction=5).attenuation_db == 57
    assert m(k, T0, rssi=-5, tx=-8).attenuation_db == 0
    assert Match(k, m(k, T0).sighting, DAY0, None).attenuation_db is None


def test_windows_are_at_most_thirty_minutes() -> None:
    """WIN-1: a sighting 30 min or more after the window's start opens a new window."""
    k = key(2)
    # scan instances start at +60, +1859 (< 30 min: same window), +1890 (new), +3060
    times = [T0 + 60, T0 + 60 + 1799, T0 + 60 + 1830, T0 + 60 + 3000]
    windows = build_exposure_windows([m(k, t) for t in times], MAPPING)
    assert [len(w.scan_instances) for w in windows] == [2, 2]
    assert [w.start_unix_time for w in windows] == [T0 + 60, T0 + 1890]
    assert all(w.day == T0 // 86400 for w in windows)
    assert windows[0].date.isoformat() == "2020-04-02"


def test_a_windows_day_is_the_utc_day_of_its_first_sighting() -> None:
    """WIN-1: a window opened at 23:50 UTC belongs to that day even when it runs past
    midnight; the next window, opened after midnight, to the next day."""
    k = key(2)
    evening = T0 + 86400 - 600  # 23:50 UTC
    times = [evening, evening + 900, evening + 1800, evening + 1900]
    windows = build_exposure_windows([m(k, t) for t in times], MAPPING)
    assert [w.start_unix_time for w in windows] == [evening, evening + 1800]
    assert [w.day for w in windows] == [T0 // 86400, T0 // 86400 + 1]
    assert windows[0].date.isoformat() == "2020-04-02"


def test_scan_instances_merge_close_sightings() -> None:
    """WIN-3: sightings < 25.5 s after the instance start merge; typical = round-half-up mean."""
    k = key(3)
    # attenuations 50 and 51 (mean 50.5 → 51), then 60 alone 25.5 s later.
    ms = [m(k, T0, rssi=-60), m(k, T0 + 25, rssi=-61), m(k, T0 + 25.5, rssi=-70)]
    [w] = build_exposure_windows(ms, MAPPING)
    assert w.scan_instances[0] == ScanInstance(51, 50, 120)
    assert w.scan_instances[1].typical_attenuation_db == 60
    assert w.scan_instances[1].min_attenuation_db == 60


def test_seconds_since_last_scan_default_minutes_and_cap() -> None:
    """WIN-3: 120 s for the first; whole minutes since the previous scan, capped at 300 s."""
    k = key(4)
    # minute marks: 0:50 → 3:10 is 3 minutes by the clock; 3:10 → 12:00 is capped.
    times = [T0 + 50, T0 + 190, T0 + 720, T0 + 750 + 1800 - 100]
    windows = build_exposure_windows([m(k, t) for t in times], MAPPING)
    seconds = [s.seconds_since_last_scan for w in windows for s in w.scan_instances]
    assert seconds == [120, 180, 300, 300]


def test_calibration_confidence_is_the_lowest_of_receiver_and_sender() -> None:
    """WIN-4: min over the window of receiver and (metadata ≥ 1.1) sender confidence."""
    k = key(5)
    low_sender = [m(k, T0), m(k, T0 + 60, sender=CalibrationConfidence.LOW)]
    assert build_exposure_windows(low_sender, MAPPING)[0].calibration_confidence == 1
    v10 = [
        m(
            k,
            T0,
            minor=0,
            sender=CalibrationConfidence.LOWEST,
            receiver=CalibrationConfidence.MEDIUM,
        )
    ]
    assert build_exposure_windows(v10, MAPPING)[0].calibration_confidence == 2


def test_infectiousness_and_report_type_mapping() -> None:
    """WIN-5: dsos through the 29-entry table; missing dsos, |dsos| > 14 and UNKNOWN report
    type mapped."""
    high_when_missing = dataclasses.replace(
        MAPPING, infectiousness_when_days_since_onset_missing=Infectiousness.HIGH
    )
    cases = {
        key(6, dsos=0): Infectiousness.HIGH,
        key(7, dsos=-14): Infectiousness.STANDARD,
        key(8, dsos=14): Infectiousness.STANDARD,
        key(9, dsos=None): Infectiousness.HIGH,
        key(10, dsos=15): Infectiousness.HIGH,
        key(11, dsos=-15): Infectiousness.HIGH,
    }
    for k, expected in cases.items():
        [w] = build_exposure_windows([m(k, T0)], high_when_missing)
        assert w.infectiousness == expected
    # outside the table is "missing": NONE there means no window
    production = default_config().diagnosis_keys_data_mapping
    assert build_exposure_windows([m(key(10, dsos=15), T0)], production) == []
    assert build_exposure_windows([m(key(11, dsos=-15), T0)], production) == []
    [w] = build_exposure_windows([m(key(12, report_type=ReportType.UNKNOWN), T0)], MAPPING)
    assert w.report_type == ReportType.CONFIRMED_CLINICAL_DIAGNOSIS
    # CWA production: a key without days since onset is NONE and yields no window
    assert build_exposure_windows([m(key(13, dsos=None), T0)], production) == []


def test_revoked_keys_yield_no_windows_and_revoke_their_siblings() -> None:
    """WIN-6: REVOKED never yields a window, nor does the same TEK and start published otherwise."""
    revoked = key(14, report_type=ReportType.REVOKED)
    sibling = DiagnosisKey(
        revoked.key_data,
        revoked.rolling_start_interval_number,
        144,
        6,
        ReportType.CONFIRMED_TEST,
        0,
    )
    other = key(15)
    ms = [m(revoked, T0), m(sibling, T0 + 60), m(other, T0 + 120)]
    windows = build_exposure_windows(ms, MAPPING)
    assert len(windows) == 1 and windows[0].start_unix_time == T0 + 120


def test_undecodable_metadata_is_left_out() -> None:
    """WIN-2: a match without metadata gives no attenuation and no scan instance."""
    k = key(16)
    bare = Match(k, m(k, T0).sighting, DAY0, None)
    assert build_exposure_windows([bare], MAPPING) == []


def test_from_real_matches() -> None:
    """WIN-1 … WIN-3 end to end: matcher output grouped per key, in time order."""
    a, b = key(17, dsos=0), key(18, dsos=3)
    seen = [
        sighting_of(a, DAY0 + 6, offset_seconds=10, rssi=-65, tx_power=-5),
        sighting_of(a, DAY0 + 7, offset_seconds=10, rssi=-75, tx_power=-5),
        sighting_of(b, DAY0 + 6, offset_seconds=300, rssi=-55, tx_power=-5),
    ]
    windows = build_exposure_windows(match([a, b], seen).matches, MAPPING)
    assert [(w.infectiousness, len(w.scan_instances)) for w in windows] == [
        (Infectiousness.HIGH, 2),
        (Infectiousness.STANDARD, 1),
    ]
    assert windows[0].scan_instances == (ScanInstance(60, 60, 120), ScanInstance(70, 70, 300))
    assert isinstance(windows[0], ExposureWindow)
