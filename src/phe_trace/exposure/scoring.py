"""Risk scoring of exposure windows: GAEN daily summaries and Corona-Warn-App risk levels.

``protocol_spec/SPEC.md`` §10 (RISK-2 … RISK-7). Both scorers are pure functions of the
windows and a configuration (:mod:`phe_trace.exposure.config`); days are UTC days since
1970-01-01 and "today" is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from math import floor

from phe_trace.protocol.diagnosis_key import ReportType

from .config import (
    DailySummariesConfig,
    NormalizedTimeToRiskLevel,
    RiskCalculationParameters,
    RiskLevel,
)
from .model import ExposureWindow, Infectiousness

__all__ = [
    "CwaDayResult",
    "CwaRiskResult",
    "CwaWindowResult",
    "DailySummary",
    "ScoreSummary",
    "cwa_risk",
    "cwa_window_risk",
    "daily_summaries",
    "window_score",
]


# --- GAEN DailySummariesConfig ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScoreSummary:
    """GAEN ``ExposureSummaryData``: the scores of some windows of one day."""

    maximum_score: float = 0.0
    score_sum: float = 0.0
    weighted_duration_sum: float = 0.0

    def add(self, score: float, weighted_duration: float) -> ScoreSummary:
        """This summary with one more window."""
        return ScoreSummary(
            max(self.maximum_score, score),
            self.score_sum + score,
            self.weighted_duration_sum + weighted_duration,
        )


@dataclass(frozen=True, slots=True)
class DailySummary:
    """GAEN ``DailySummary``: one day's windows, overall and per report type (RISK-4)."""

    day: int
    summary: ScoreSummary
    per_report_type: Mapping[ReportType, ScoreSummary] = field(default_factory=dict)


def _bucket(attenuation: int, thresholds: tuple[int, int, int]) -> int:
    for i, threshold in enumerate(thresholds):
        if attenuation <= threshold:
            return i
    return 3


def window_score(window: ExposureWindow, config: DailySummariesConfig) -> tuple[float, float]:
    """``(weighted_duration, score)`` of one window (RISK-2, RISK-3).

    ``weighted_duration = Σ seconds_since_last_scan × bucket weight(typical attenuation)``;
    ``score = weighted_duration × report-type weight × infectiousness weight``. REVOKED,
    UNKNOWN and NONE weigh 0.
    """
    weights, thresholds = config.attenuation_bucket_weights, config.attenuation_bucket_thresholds_db
    duration = sum(
        s.seconds_since_last_scan * weights[_bucket(s.typical_attenuation_db, thresholds)]
        for s in window.scan_instances
    )
    score = (
        duration
        * config.report_type_weights.get(ReportType(window.report_type), 0.0)
        * config.infectiousness_weights.get(Infectiousness(window.infectiousness), 0.0)
    )
    return duration, score


def daily_summaries(
    windows: Iterable[ExposureWindow], config: DailySummariesConfig, *, today: int
) -> list[DailySummary]:
    """GAEN daily summaries of ``windows``, oldest day first (RISK-2 … RISK-4).

    A window is left out when its report type is REVOKED or UNKNOWN, its infectiousness
    NONE, its score below ``minimum_window_score``, or (threshold > 0) when
    ``today − day`` exceeds ``days_since_exposure_threshold``.
    """
    days: dict[int, tuple[ScoreSummary, dict[ReportType, ScoreSummary]]] = {}
    for w in windows:
        report_type = ReportType(w.report_type)
        if report_type in (ReportType.REVOKED, ReportType.UNKNOWN):
            continue
        if w.infectiousness == Infectiousness.NONE:
            continue
        threshold = config.days_since_exposure_threshold
        if threshold and today - w.day > threshold:
            continue
        duration, score = window_score(w, config)
        if score < config.minimum_window_score:
            continue
        overall, per_type = days.get(w.day, (ScoreSummary(), {}))
        per_type[report_type] = per_type.get(report_type, ScoreSummary()).add(score, duration)
        days[w.day] = (overall.add(score, duration), per_type)
    return [DailySummary(day, s, dict(p)) for day, (s, p) in sorted(days.items())]


# --- Corona-Warn-App risk calculation ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CwaWindowResult:
    """A window that passed the filters, with its normalized time and risk level (RISK-5)."""

    window: ExposureWindow
    transmission_risk_level: int
    normalized_time: float
    risk_level: RiskLevel


@dataclass(frozen=True, slots=True)
class CwaDayResult:
    """One day's aggregated risk (RISK-6); ``risk_level`` ``None``: below every range."""

    day: int
    normalized_time: float
    risk_level: RiskLevel | None
    minimum_distinct_encounters_with_low_risk: int
    minimum_distinct_encounters_with_high_risk: int


@dataclass(frozen=True, slots=True)
class CwaRiskResult:
    """The total risk over all days (RISK-7)."""

    total_risk_level: RiskLevel
    days: tuple[CwaDayResult, ...]
    windows: tuple[CwaWindowResult, ...]
    most_recent_date_with_low_risk: int | None
    most_recent_date_with_high_risk: int | None
    number_of_days_with_low_risk: int
    number_of_days_with_high_risk: int
    total_minimum_distinct_encounters_with_low_risk: int
    total_minimum_distinct_encounters_with_high_risk: int


def _level(value: float, mapping: tuple[NormalizedTimeToRiskLevel, ...]) -> RiskLevel | None:
    for entry in mapping:
        if value in entry.normalized_time_range:
            return entry.risk_level
    return None


def _seconds(window: ExposureWindow) -> list[tuple[int, int]]:
    """(min attenuation, seconds ≥ 0) per scan instance; negative seconds count as 0."""
    return [
        (s.min_attenuation_db, max(s.seconds_since_last_scan, 0)) for s in window.scan_instances
    ]


def cwa_window_risk(
    window: ExposureWindow, params: RiskCalculationParameters
) -> CwaWindowResult | None:
    """The CWA risk of one window, or ``None`` when it is filtered out (RISK-5).

    Steps: minutes-at-attenuation filters; transmission risk level = report-type offset +
    infectiousness offset (HIGH gets the high offset, anything else the standard one;
    REVOKED and UNKNOWN have no offset and never score); TRL filters; normalized time =
    transmission risk value × (Σ seconds × weight(min attenuation) / 60), in that order of
    double operations, as the Corona-Warn-App computes it; the window's risk
    level from the per-window mapping (``None`` if no range holds it).
    """
    scans = _seconds(window)
    for f in params.minutes_at_attenuation_filters:
        seconds = sum(s for a, s in scans if a in f.attenuation_range)
        if seconds / 60 in f.drop_if_minutes_in_range:
            return None
    offset = params.trl_encoding.report_type_offset(ReportType(window.report_type))
    if offset is None:
        return None
    encoding = params.trl_encoding
    high = window.infectiousness == Infectiousness.HIGH
    trl = offset + (
        encoding.infectiousness_offset_high if high else encoding.infectiousness_offset_standard
    )
    if any(trl in f.drop_if_trl_in_range for f in params.trl_filters):
        return None
    value = params.transmission_risk_value_mapping.get(trl, 0.0)
    weighted_seconds = 0.0
    for attenuation, seconds in scans:
        for w in params.minutes_at_attenuation_weights:
            if attenuation in w.attenuation_range:
                weighted_seconds += seconds * w.weight
                break
    # The Corona-Warn-App's double arithmetic, operation for operation: TRV × (seconds / 60).
    normalized = value * (weighted_seconds / 60)
    level = _level(normalized, params.normalized_time_per_exposure_window_to_risk_level)
    return None if level is None else CwaWindowResult(window, trl, normalized, level)


def _sum_in_order(values: Iterable[float]) -> float:
    """Plain left-to-right double addition, as the Corona-Warn-App sums a day's windows
    (``sum()`` compensates rounding errors from Python 3.12 on, which CWA does not)."""
    total = 0.0
    for v in values:
        total += v
    return total


def _round1(value: float) -> float:
    """One decimal as the Corona-Warn-App rounds a day (RISK-6): the double ``value × 10``
    rounded to the nearest integer, ties towards positive infinity (Java ``Math.round``,
    exact on the double, no intermediate ``+ 0.5``), then divided by 10."""
    scaled = Fraction(value * 10)
    return floor(scaled + Fraction(1, 2)) / 10


def _encounters(results: list[CwaWindowResult], level: RiskLevel) -> int:
    return len(
        {
            (r.transmission_risk_level, int(r.window.calibration_confidence))
            for r in results
            if r.risk_level == level
        }
    )


def cwa_risk(windows: Iterable[ExposureWindow], params: RiskCalculationParameters) -> CwaRiskResult:
    """Corona-Warn-App-style risk over all windows (RISK-5 … RISK-7).

    Per day: the normalized times of the day's scored windows are summed, rounded to one
    decimal and mapped to a day risk level; distinct encounters count distinct
    (transmission risk level, calibration confidence) pairs among the day's LOW (HIGH)
    windows, on days that have a risk level. In total: HIGH if any day is HIGH, else LOW.
    """
    scored = [r for w in windows if (r := cwa_window_risk(w, params)) is not None]
    by_day: dict[int, list[CwaWindowResult]] = {}
    for r in scored:
        by_day.setdefault(r.window.day, []).append(r)
    days = []
    for day, results in sorted(by_day.items()):
        normalized = _round1(_sum_in_order(r.normalized_time for r in results))
        level = _level(normalized, params.normalized_time_per_day_to_risk_level)
        counted = results if level is not None else []
        days.append(
            CwaDayResult(
                day,
                normalized,
                level,
                _encounters(counted, RiskLevel.LOW),
                _encounters(counted, RiskLevel.HIGH),
            )
        )
    low = [d.day for d in days if d.risk_level == RiskLevel.LOW]
    high = [d.day for d in days if d.risk_level == RiskLevel.HIGH]
    return CwaRiskResult(
        total_risk_level=RiskLevel.HIGH if high else RiskLevel.LOW,
        days=tuple(days),
        windows=tuple(scored),
        most_recent_date_with_low_risk=max(low, default=None),
        most_recent_date_with_high_risk=max(high, default=None),
        number_of_days_with_low_risk=len(low),
        number_of_days_with_high_risk=len(high),
        total_minimum_distinct_encounters_with_low_risk=sum(
            d.minimum_distinct_encounters_with_low_risk for d in days
        ),
        total_minimum_distinct_encounters_with_high_risk=sum(
            d.minimum_distinct_encounters_with_high_risk for d in days
        ),
    )
