"""The 29 official Corona-Warn-App exposure-window test cases (SPEC RISK-5, RISK-6, RISK-7).

Source: ``protocol_spec/vectors/cwa_exposure_windows_risk_calculation.json`` (kind
``independent``: the Corona-Warn-App's own test resource, with its embedded
configuration, translated field by field from its camelCase names to ours).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from phe_trace.crypto import CalibrationConfidence
from phe_trace.exposure import ExposureWindow, Infectiousness, ScanInstance
from phe_trace.exposure.config import RiskCalculationParameters, RiskLevel
from phe_trace.exposure.scoring import cwa_risk
from phe_trace.protocol.diagnosis_key import ReportType
from tests.vectors import load_vectors

VECTORS = load_vectors("cwa_exposure_windows_risk_calculation")
TODAY = 20_000  # any day: the cases speak in ages (days before today)
_RENAME = {
    "normalizedTimePerEWToRiskLevelMapping": "normalized_time_per_exposure_window_to_risk_level",
    "normalizedTimePerDayToRiskLevelMapping": "normalized_time_per_day_to_risk_level",
    "dropIfMinutesInRange": "drop_if_minutes_in_range",
    "dropIfTrlInRange": "drop_if_trl_in_range",
}


def _snake(name: str) -> str:
    return _RENAME.get(name) or re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _translate(value: Any) -> Any:
    if isinstance(value, dict):
        return {_snake(k): _translate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_translate(v) for v in value]
    return value


PARAMS = RiskCalculationParameters.parse(_translate(VECTORS["defaultRiskCalculationConfiguration"]))


def _window(w: dict[str, Any]) -> ExposureWindow:
    return ExposureWindow(
        day=TODAY - w["ageInDays"],
        report_type=ReportType(w["reportType"]),
        infectiousness=Infectiousness(w["infectiousness"]),
        calibration_confidence=CalibrationConfidence(w["calibrationConfidence"]),
        scan_instances=tuple(
            ScanInstance(s["typicalAttenuation"], s["minAttenuation"], s["secondsSinceLastScan"])
            for s in w["scanInstances"]
        ),
    )


def _age(day: int | None) -> int | None:
    return None if day is None else TODAY - day


def test_all_29_cases_are_present() -> None:
    assert len(VECTORS["testCases"]) == 29


@pytest.mark.parametrize(
    "case", VECTORS["testCases"], ids=[c["description"][:60] for c in VECTORS["testCases"]]
)
def test_cwa_case(case: dict[str, Any]) -> None:
    """RISK-5 … RISK-7: one official case through our scorer with its embedded config."""
    result = cwa_risk([_window(w) for w in case["exposureWindows"]], PARAMS)
    assert int(result.total_risk_level) == case["expTotalRiskLevel"]
    assert _age(result.most_recent_date_with_low_risk) == case["expAgeOfMostRecentDateWithLowRisk"]
    assert (
        _age(result.most_recent_date_with_high_risk) == case["expAgeOfMostRecentDateWithHighRisk"]
    )
    assert result.number_of_days_with_low_risk == case["expNumberOfDaysWithLowRisk"]
    assert result.number_of_days_with_high_risk == case["expNumberOfDaysWithHighRisk"]
    assert (
        result.total_minimum_distinct_encounters_with_low_risk
        == case["expTotalMinimumDistinctEncountersWithLowRisk"]
    )
    assert (
        result.total_minimum_distinct_encounters_with_high_risk
        == case["expTotalMinimumDistinctEncountersWithHighRisk"]
    )
    assert RiskLevel.HIGH == 2
