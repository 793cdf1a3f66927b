"""The public surface of phe_trace.exposure is pinned (SPEC MATCH-1)."""

from __future__ import annotations

import phe_trace.exposure as exposure
from phe_trace.crypto import batch


def test_public_names_are_pinned() -> None:
    """MATCH-1: the exposure API the agent builds on; change it on purpose only."""
    assert sorted(exposure.__all__) == sorted(
        [
            "DEFAULT_TOLERANCE_INTERVALS",
            "ArrayMatches",
            "ExposureConfigError",
            "CwaDayResult",
            "CwaRiskResult",
            "CwaWindowResult",
            "DailySummariesConfig",
            "DailySummary",
            "DiagnosisKeysDataMapping",
            "ExposureConfig",
            "ExposureError",
            "ExposureWindow",
            "Infectiousness",
            "Match",
            "MatchInputError",
            "MatchResult",
            "RejectedKey",
            "RiskCalculationParameters",
            "RiskLevel",
            "ScanInstance",
            "ScoreSummary",
            "Sighting",
            "SightingError",
            "SightingIndex",
            "build_exposure_windows",
            "cwa_risk",
            "daily_summaries",
            "default_config",
            "load_config",
            "match",
            "match_arrays",
            "reception_window",
        ]
    )
    for name in exposure.__all__:
        assert getattr(exposure, name) is not None
    assert batch.__all__ == ["backend", "rpis_concat", "rpis_into"]
    assert exposure.DEFAULT_TOLERANCE_INTERVALS == 12


def test_errors_are_rooted_and_coded() -> None:
    """MATCH-1: every exposure error is a PheTraceError with a stable code."""
    from phe_trace.errors import PheTraceError

    codes = {
        cls.code
        for cls in (
            exposure.ExposureError,
            exposure.ExposureConfigError,
            exposure.MatchInputError,
            exposure.SightingError,
        )
    }
    assert len(codes) == 4
    assert issubclass(exposure.ExposureConfigError, PheTraceError)
