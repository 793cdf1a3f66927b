"""GAEN daily summaries and CWA risk on hand-worked examples (SPEC RISK-2 … RISK-8)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest

from phe_trace.crypto import CalibrationConfidence
from phe_trace.exposure import (
    DailySummariesConfig,
    ExposureWindow,
    Infectiousness,
    RiskLevel,
    ScanInstance,
    build_exposure_windows,
    cwa_risk,
    daily_summaries,
    default_config,
    match,
)
from phe_trace.exposure.scoring import cwa_window_risk, window_score
from phe_trace.protocol.diagnosis_key import ReportType

from .support import DAY0, key, sighting_of

DAY = 18_354  # 2020-04-02
CONFIG = DailySummariesConfig(
    attenuation_bucket_thresholds_db=(30, 50, 70),
    attenuation_bucket_weights=(2.0, 1.0, 0.5, 0.0),
    report_type_weights={ReportType.CONFIRMED_TEST: 1.0, ReportType.SELF_REPORT: 0.5},
    infectiousness_weights={Infectiousness.STANDARD: 1.0, Infectiousness.HIGH: 2.0},
    minimum_window_score=0.0,
    days_since_exposure_threshold=0,
)


def window(
    scans: list[tuple[int, int, int]],
    *,
    day: int = DAY,
    report_type: ReportType = ReportType.CONFIRMED_TEST,
    infectiousness: Infectiousness = Infectiousness.STANDARD,
    confidence: CalibrationConfidence = CalibrationConfidence.LOWEST,
) -> ExposureWindow:
    return ExposureWindow(
        day, report_type, infectiousness, confidence, tuple(ScanInstance(*s) for s in scans)
    )


def test_bucket_edges_use_typical_attenuation() -> None:
    """RISK-2: a ≤ 30 immediate, ≤ 50 near, ≤ 70 medium, else other — by typical attenuation."""
    w = window([(30, 99, 60), (31, 0, 60), (50, 0, 60), (51, 0, 60), (70, 0, 60), (71, 0, 60)])
    duration, score = window_score(w, CONFIG)
    assert duration == 60 * (2.0 + 1.0 + 1.0 + 0.5 + 0.5 + 0.0)
    assert score == duration


def test_buckets_follow_the_published_thresholds_not_the_defaults() -> None:
    """RISK-2: with thresholds [40, 55, 60], 40 is immediate, 41 and 55 near, 56 and 60
    medium, 61 other — the configured edges, inclusive, by typical attenuation."""
    config = dataclasses.replace(CONFIG, attenuation_bucket_thresholds_db=(40, 55, 60))
    w = window([(40, 99, 60), (41, 0, 60), (55, 0, 60), (56, 0, 60), (60, 0, 60), (61, 0, 60)])
    duration, _ = window_score(w, config)
    assert duration == 60 * (2.0 + 1.0 + 1.0 + 0.5 + 0.5 + 0.0)
    assert window_score(w, CONFIG)[0] == 60 * (1.0 + 1.0 + 0.5 + 0.5 + 0.5 + 0.5)


def test_window_score_weights_and_minimum() -> None:
    """RISK-3: score = weighted duration × report-type weight × infectiousness weight."""
    w = window(
        [(20, 20, 300)], report_type=ReportType.SELF_REPORT, infectiousness=Infectiousness.HIGH
    )
    assert window_score(w, CONFIG) == (600.0, 600.0 * 0.5 * 2.0)
    strict = dataclasses.replace(CONFIG, minimum_window_score=601.0)
    assert daily_summaries([w], strict, today=DAY) == []
    [summary] = daily_summaries([w], CONFIG, today=DAY)
    assert summary.summary.score_sum == 600.0


def test_daily_summaries_aggregate_per_day_and_report_type() -> None:
    """RISK-4: per day, max score, score sum and weighted duration sum, overall and per type."""
    ws = [
        window([(20, 20, 120)]),  # 240
        window([(40, 40, 300)]),  # 300
        window([(60, 60, 300)], report_type=ReportType.SELF_REPORT),  # 150 dur, 75 score
        window([(20, 20, 60)], day=DAY - 3),  # 120
    ]
    old, today = daily_summaries(ws, CONFIG, today=DAY)
    assert (old.day, old.summary.score_sum) == (DAY - 3, 120.0)
    assert today.summary.maximum_score == 300.0
    assert today.summary.score_sum == 240.0 + 300.0 + 75.0
    assert today.summary.weighted_duration_sum == 240.0 + 300.0 + 150.0
    assert today.per_report_type[ReportType.SELF_REPORT].score_sum == 75.0
    assert today.per_report_type[ReportType.CONFIRMED_TEST].maximum_score == 300.0
    limited = dataclasses.replace(CONFIG, days_since_exposure_threshold=2)
    assert [d.day for d in daily_summaries(ws, limited, today=DAY)] == [DAY]


@pytest.mark.parametrize("report_type", [ReportType.REVOKED, ReportType.UNKNOWN])
def test_revoked_and_unknown_never_score(report_type: ReportType) -> None:
    """RISK-3, RISK-5: REVOKED (and an unmapped UNKNOWN) weigh nothing in either scorer."""
    w = window([(20, 20, 300)] * 6, report_type=report_type, infectiousness=Infectiousness.HIGH)
    assert daily_summaries([w], CONFIG, today=DAY) == []
    assert cwa_window_risk(w, default_config().risk_calculation) is None
    assert cwa_risk([w], default_config().risk_calculation).total_risk_level == RiskLevel.LOW


def test_cwa_production_parameters_by_hand() -> None:
    """RISK-5, RISK-8: 15 min at 50 dB from a confirmed HIGH key: TRL 8, TRV 1.6 → 19.2 → HIGH."""
    params = default_config().risk_calculation
    w = window([(50, 50, 300)] * 3, infectiousness=Infectiousness.HIGH)
    r = cwa_window_risk(w, params)
    assert r is not None
    assert r.transmission_risk_level == 6 + 2
    assert r.normalized_time == pytest.approx(1.6 * 900 * 0.8 / 60)
    assert r.risk_level == RiskLevel.HIGH
    # under 5 minutes at < 79 dB: dropped by the minutes-at-attenuation filter
    assert (
        cwa_window_risk(window([(50, 50, 240)], infectiousness=Infectiousness.HIGH), params) is None
    )
    # recursive + standard = TRL 1: dropped by the TRL filter
    assert (
        cwa_window_risk(window([(50, 50, 300)] * 3, report_type=ReportType.RECURSIVE), params)
        is None
    )
    # self report + standard = TRL 3, TRV 0.6: 0.6 × 15 × 0.8 = 7.2 → LOW
    low = cwa_window_risk(window([(50, 50, 300)] * 3, report_type=ReportType.SELF_REPORT), params)
    assert low is not None and low.risk_level == RiskLevel.LOW


def test_trl_filter_drops_exactly_its_levels() -> None:
    """RISK-5: the production TRL filter [1, 2] drops TRL 1 (recursive + standard) and TRL 2
    (recursive + high) and nothing else: TRL 3 and TRL 0 (a filter-free configuration) score."""
    params = default_config().risk_calculation
    scans = [(50, 50, 300)] * 3
    recursive = ReportType.RECURSIVE
    for infectiousness in (Infectiousness.STANDARD, Infectiousness.HIGH):
        assert (
            cwa_window_risk(
                window(scans, report_type=recursive, infectiousness=infectiousness), params
            )
            is None
        )
    kept = cwa_window_risk(window(scans, report_type=ReportType.SELF_REPORT), params)
    assert kept is not None and kept.transmission_risk_level == 3
    zero = dataclasses.replace(
        params,
        trl_encoding=dataclasses.replace(params.trl_encoding, infectiousness_offset_standard=0),
    )
    r = cwa_window_risk(window(scans, report_type=recursive), zero)
    assert r is not None and r.transmission_risk_level == 0


def test_a_day_without_a_level_counts_no_encounters() -> None:
    """RISK-6: distinct encounters are counted only on days that have a level: with a day
    mapping that starts at 13, a day at 7.2 has no level and no LOW encounters."""
    params = default_config().risk_calculation
    [high] = [
        e for e in params.normalized_time_per_day_to_risk_level if e.risk_level == RiskLevel.HIGH
    ]
    only_high = dataclasses.replace(params, normalized_time_per_day_to_risk_level=(high,))
    low = window([(50, 50, 300)] * 3, report_type=ReportType.SELF_REPORT)
    [day] = cwa_risk([low], only_high).days
    assert day.normalized_time == 7.2 and day.risk_level is None
    assert day.minimum_distinct_encounters_with_low_risk == 0
    [counted] = cwa_risk([low], params).days
    assert counted.risk_level == RiskLevel.LOW
    assert counted.minimum_distinct_encounters_with_low_risk == 1


def test_cwa_days_round_and_count_distinct_encounters() -> None:
    """RISK-6, RISK-7: per-day sums rounded to 0.1; encounters distinct by (TRL, confidence)."""
    params = default_config().risk_calculation
    lows = [
        window([(50, 50, 300)] * 3, report_type=ReportType.SELF_REPORT, confidence=c)
        for c in (CalibrationConfidence.LOW, CalibrationConfidence.LOW, CalibrationConfidence.HIGH)
    ]
    result = cwa_risk(lows, params)
    [day] = result.days
    assert day.normalized_time == 21.6  # 3 × 7.2, above 13 → the day is HIGH
    assert day.risk_level == RiskLevel.HIGH
    assert day.minimum_distinct_encounters_with_low_risk == 2
    assert result.total_risk_level == RiskLevel.HIGH
    assert result.most_recent_date_with_high_risk == DAY
    single = cwa_risk(lows[:1], params)
    assert single.total_risk_level == RiskLevel.LOW and single.most_recent_date_with_low_risk == DAY


def test_end_to_end_close_contact_is_high_risk() -> None:
    """RISK-5 … RISK-8 with WIN and MATCH: 20 minutes at 1–2 m from a confirmed case."""
    k = key(42, dsos=1)
    seen = [
        sighting_of(k, DAY0 + 60 + i // 2, offset_seconds=300 * (i % 2) + 5, rssi=-65, tx_power=-10)
        for i in range(5)
    ]
    config = default_config()
    windows = build_exposure_windows(match([k], seen).matches, config.diagnosis_keys_data_mapping)
    assert sum(w.duration_seconds for w in windows) == 120 + 4 * 300
    risk = cwa_risk(windows, config.risk_calculation)
    assert risk.total_risk_level == RiskLevel.HIGH
    stranger = key(43, dsos=1)
    assert (
        cwa_risk(
            build_exposure_windows(
                match([stranger], seen).matches, config.diagnosis_keys_data_mapping
            ),
            config.risk_calculation,
        ).total_risk_level
        == RiskLevel.LOW
    )


# --- CWA's double arithmetic at rounding ties (RISK-5, RISK-6) ----------------------------

#: Transmission risk level → (report type, infectiousness) giving it under the CWA encoding.
_TRL = {
    3: (ReportType.SELF_REPORT, Infectiousness.STANDARD),
    5: (ReportType.CONFIRMED_CLINICAL_DIAGNOSIS, Infectiousness.STANDARD),
    6: (ReportType.CONFIRMED_CLINICAL_DIAGNOSIS, Infectiousness.HIGH),
    7: (ReportType.CONFIRMED_TEST, Infectiousness.STANDARD),
    8: (ReportType.CONFIRMED_TEST, Infectiousness.HIGH),
}
#: The production weights by minimum attenuation, as decimal strings, and the production
#: transmission risk values (SPEC RISK-8).
_WEIGHT = {50: "0.8", 65: "1.0", 75: "0.1"}
_TRV = {3: "0.6", 5: "1.0", 6: "1.2", 7: "1.4", 8: "1.6"}

Case = list[tuple[int, list[tuple[int, int]]]]  # [(TRL, [(attenuation dB, seconds)])]


def _windows(case: Case) -> list[ExposureWindow]:
    return [
        window([(a, a, s) for a, s in scans], report_type=_TRL[trl][0], infectiousness=_TRL[trl][1])
        for trl, scans in case
    ]


def _exact_day(case: Case) -> Fraction:
    """The day's normalized time in exact rational arithmetic."""
    return sum(
        (
            Fraction(_TRV[trl]) * sum(s * Fraction(_WEIGHT[a]) for a, s in scans) / 60
            for trl, scans in case
        ),
        Fraction(0),
    )


def _cwa_reference(case: Case) -> float:
    """The Corona-Warn-App's day value: per window, seconds × weight added up in doubles,
    normalized time = TRV × (weighted seconds / 60); the day's windows added in order;
    Java ``Math.round(x × 10) / 10.0`` (ties towards +∞, exact on the double)."""
    day = 0.0
    for trl, scans in case:
        weighted = 0.0
        for a, s in scans:
            weighted += s * float(_WEIGHT[a])
        day += float(_TRV[trl]) * (weighted / 60)
    scaled = Fraction(day * 10)
    whole = scaled.numerator // scaled.denominator
    return (whole + (1 if scaled - whole >= Fraction(1, 2) else 0)) / 10


def test_cwa_day_at_a_tie_rounds_as_the_corona_warn_app() -> None:
    """RISK-5, RISK-6: production config, one day: window A (clinical diagnosis, standard)
    and window B (confirmed test, standard) sum to exactly 777/60 = 12.95; CWA's double
    arithmetic rounds it to 13.0, so the day is HIGH (not 12.9, LOW)."""
    case: Case = [(5, [(50, 190), (65, 45), (75, 74)]), (7, [(65, 300), (65, 109)])]
    assert _exact_day(case) == Fraction(777, 60) == Fraction(1295, 100)
    result = cwa_risk(_windows(case), default_config().risk_calculation)
    [day] = result.days
    assert day.normalized_time == 13.0
    assert day.risk_level == RiskLevel.HIGH
    assert result.total_risk_level == RiskLevel.HIGH


#: Days whose exact normalized time lies on a rounding tie (x.x5); CWA's doubles land on
#: either side of it, and phe-trace must land where CWA does.
_TIES: list[Case] = [
    [(3, [(65, 135)])],  # 1.35
    [(7, [(65, 83), (65, 22)])],  # 2.45
    [(3, [(75, 122), (75, 182), (75, 246)])],  # 0.55
    [(3, [(50, 269), (65, 238), (50, 39)]), (6, [(75, 203)])],  # 5.25
    [
        (6, [(50, 54), (50, 281)]),
        (5, [(65, 152), (50, 281), (75, 297)]),
        (3, [(75, 146), (75, 269)]),
    ],  # 12.55
    [
        (8, [(75, 200), (75, 23)]),
        (8, [(65, 263), (65, 226), (65, 125)]),
        (3, [(65, 9), (50, 49), (65, 270)]),
    ],  # 20.15
    [(5, [(65, 735)])],  # 12.25: exact in doubles too, half up → 12.3
    [(5, [(65, 765)])],  # 12.75 → 12.8
]


def test_cwa_days_on_exact_ties_follow_the_apps_double_arithmetic() -> None:
    """RISK-5, RISK-6: for days built to lie exactly on a tie (checked with fractions), the
    day's value is CWA's (doubles in CWA's order, Java rounding), whichever side that is."""
    params = dataclasses.replace(
        default_config().risk_calculation, minutes_at_attenuation_filters=()
    )
    sides = set()
    for case in _TIES:
        exact = _exact_day(case)
        assert (exact * 10).denominator == 2, case  # a tie at the first decimal
        expected = _cwa_reference(case)
        [day] = cwa_risk(_windows(case), params).days
        assert day.normalized_time == expected, (float(exact), case)
        sides.add(Fraction(expected) > exact)
    assert sides == {True, False}  # some round up, some land below the tie in doubles
