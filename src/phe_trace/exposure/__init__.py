"""Exposure matching, exposure windows and risk scoring — a pure library (layer 1).

``protocol_spec/SPEC.md`` §8–§10. The device agent calls :func:`match` with the diagnosis
keys of downloaded exports and a :class:`SightingIndex` of its stored sightings (built from
the stored records' bytes in bulk; :func:`match_arrays` is the same for keys held as
arrays), turns the matches into
:class:`ExposureWindow` values with :func:`build_exposure_windows`, and scores them with
:func:`daily_summaries` (GAEN ``DailySummariesConfig``) or :func:`cwa_risk`
(Corona-Warn-App-style risk calculation)::

    result = match(keys, sightings)                     # MatchResult
    index = SightingIndex.from_records(stored, record_size=38, rpi_offset=0,
                                       time_offset=20, sighting=make)  # built in bulk
    result = match(keys, index)                         # only matched rows become values
    found = match_arrays(teks, starts, periods, index)  # arrays in, arrays out
    config = load_config(path)                          # or default_config()
    windows = build_exposure_windows(result.matches, config.diagnosis_keys_data_mapping)
    risk = cwa_risk(windows, config.risk_calculation)   # risk.total_risk_level

Configuration is a TOML/JSON document a health authority publishes (:func:`load_config`);
:func:`default_config` holds the Corona-Warn-App production parameters.
"""

from .config import (
    DailySummariesConfig,
    DiagnosisKeysDataMapping,
    ExposureConfig,
    RiskCalculationParameters,
    RiskLevel,
    default_config,
    load_config,
)
from .errors import ExposureConfigError, ExposureError, MatchInputError, SightingError
from .matcher import (
    DEFAULT_TOLERANCE_INTERVALS,
    ArrayMatches,
    SightingIndex,
    match,
    match_arrays,
    reception_window,
)
from .model import (
    ExposureWindow,
    Infectiousness,
    Match,
    MatchResult,
    RejectedKey,
    ScanInstance,
    Sighting,
)
from .scoring import (
    CwaDayResult,
    CwaRiskResult,
    CwaWindowResult,
    DailySummary,
    ScoreSummary,
    cwa_risk,
    daily_summaries,
)
from .windows import build_exposure_windows

__all__ = [
    "DEFAULT_TOLERANCE_INTERVALS",
    "ArrayMatches",
    "CwaDayResult",
    "CwaRiskResult",
    "CwaWindowResult",
    "DailySummariesConfig",
    "DailySummary",
    "DiagnosisKeysDataMapping",
    "ExposureConfig",
    "ExposureConfigError",
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
