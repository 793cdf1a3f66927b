"""Scoring configuration a health authority publishes, parsed and checked at the door.

``protocol_spec/SPEC.md`` §10 (RISK-1, RISK-8). One document (TOML or JSON) with three
sections, each optional in the document and then taken from the defaults:

* ``diagnosis_keys_data_mapping`` — GAEN ``DiagnosisKeysDataMapping`` (WIN-5);
* ``daily_summaries`` — GAEN ``DailySummariesConfig`` (RISK-2 … RISK-4);
* ``risk_calculation`` — Corona-Warn-App risk calculation parameters (RISK-5 … RISK-7).

Every invalid value is refused with :class:`~phe_trace.exposure.ExposureConfigError` naming the
field's dotted path, the value and the rule (weights 0–2.5, thresholds increasing, ranges
that neither overlap nor leave gaps, exact list lengths, no unknown keys). The defaults
(:func:`default_config`) are the Corona-Warn-App production parameters, shipped as the
documented file ``cwa_production.toml`` in this package.
"""

from __future__ import annotations

import itertools
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from phe_trace.protocol.diagnosis_key import ReportType

from .errors import ExposureConfigError
from .model import Infectiousness

__all__ = [
    "DailySummariesConfig",
    "DiagnosisKeysDataMapping",
    "ExposureConfig",
    "MinutesAtAttenuationFilter",
    "MinutesAtAttenuationWeight",
    "NormalizedTimeToRiskLevel",
    "Range",
    "RiskCalculationParameters",
    "RiskLevel",
    "TrlEncoding",
    "TrlFilter",
    "default_config",
    "load_config",
]

#: Largest weight GAEN accepts (report type, infectiousness, attenuation bucket).
MAX_WEIGHT = 2.5
#: Days since onset covered by the infectiousness table: −14 … +14 (29 entries).
DSOS_SPAN = 14
#: Report types that carry a weight (REVOKED and UNKNOWN never score).
WEIGHTED_REPORT_TYPES = (
    ReportType.CONFIRMED_TEST,
    ReportType.CONFIRMED_CLINICAL_DIAGNOSIS,
    ReportType.SELF_REPORT,
    ReportType.RECURSIVE,
)


class RiskLevel(IntEnum):
    """Corona-Warn-App risk level of a window, a day, or in total."""

    LOW = 1
    HIGH = 2


# --- field helpers ------------------------------------------------------------------


def _table(data: object, field: str, allowed: set[str], required: set[str]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ExposureConfigError(field, f"must be a table, got {type(data).__name__}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ExposureConfigError(f"{field}.{unknown[0]}" if field else unknown[0], "unknown field")
    missing = sorted(required - set(data))
    if missing:
        raise ExposureConfigError(f"{field}.{missing[0]}" if field else missing[0], "is required")
    return data


def _number(value: object, field: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ExposureConfigError(field, f"must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise ExposureConfigError(field, f"{value!r} is outside {low:g}..{high:g}")
    return float(value)


def _int(value: object, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ExposureConfigError(field, f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ExposureConfigError(field, f"{value} is outside {low}..{high}")
    return value


def _list(value: object, field: str, length: int | None = None) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ExposureConfigError(field, f"must be a list, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ExposureConfigError(field, f"must have exactly {length} entries, got {len(value)}")
    return list(value)


def _bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise ExposureConfigError(field, f"must be true or false, got {value!r}")
    return value


# --- ranges ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Range:
    """A number range ``min..max``; each end inclusive unless marked exclusive."""

    min: float
    max: float
    min_exclusive: bool = False
    max_exclusive: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.min if self.min_exclusive else value >= self.min
        below = value < self.max if self.max_exclusive else value <= self.max
        return above and below

    @classmethod
    def parse(cls, data: object, field: str) -> Range:
        """Parse ``{min, max, min_exclusive?, max_exclusive?}``; refuse an empty range."""
        keys = {"min", "max", "min_exclusive", "max_exclusive"}
        t = _table(data, field, keys, {"min", "max"})
        r = cls(
            _number(t["min"], f"{field}.min", -math.inf, math.inf),
            _number(t["max"], f"{field}.max", -math.inf, math.inf),
            _bool(t.get("min_exclusive", False), f"{field}.min_exclusive"),
            _bool(t.get("max_exclusive", False), f"{field}.max_exclusive"),
        )
        if r.min > r.max or (r.min == r.max and (r.min_exclusive or r.max_exclusive)):
            raise ExposureConfigError(field, f"is empty ({r.min:g}..{r.max:g})")
        return r


def _check_partition(ranges: list[Range], field: str) -> None:
    """Refuse ranges that overlap or leave a gap between them (any order given)."""
    order = sorted(range(len(ranges)), key=lambda i: (ranges[i].min, ranges[i].min_exclusive))
    for a, b in itertools.pairwise(order):
        ra, rb = ranges[a], ranges[b]
        touching = ra.max == rb.min
        if rb.min < ra.max or (touching and not ra.max_exclusive and not rb.min_exclusive):
            raise ExposureConfigError(f"{field}[{b}]", f"overlaps {field}[{a}]")
        if rb.min > ra.max or (touching and ra.max_exclusive and rb.min_exclusive):
            raise ExposureConfigError(f"{field}[{b}]", f"leaves a gap after {field}[{a}]")


# --- GAEN sections ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiagnosisKeysDataMapping:
    """GAEN ``DiagnosisKeysDataMapping``: what a key's fields mean for its windows (WIN-5).

    ``days_since_onset_to_infectiousness[d + 14]`` is the infectiousness of a key with
    ``d`` days since onset, ``-14 <= d <= 14``; a key without ``d`` or with ``|d| > 14``
    gets ``infectiousness_when_days_since_onset_missing``, as GAEN's mapping does.
    """

    days_since_onset_to_infectiousness: tuple[Infectiousness, ...]
    infectiousness_when_days_since_onset_missing: Infectiousness
    report_type_when_missing: ReportType

    def infectiousness(self, days_since_onset: int | None) -> Infectiousness:
        """The infectiousness of a key with the given days since onset of symptoms."""
        if days_since_onset is not None and -DSOS_SPAN <= days_since_onset <= DSOS_SPAN:
            return self.days_since_onset_to_infectiousness[days_since_onset + DSOS_SPAN]
        return self.infectiousness_when_days_since_onset_missing

    @classmethod
    def parse(
        cls, data: object, field: str = "diagnosis_keys_data_mapping"
    ) -> DiagnosisKeysDataMapping:
        """Parse and check one ``diagnosis_keys_data_mapping`` table."""
        names = {
            "days_since_onset_to_infectiousness",
            "infectiousness_when_days_since_onset_missing",
            "report_type_when_missing",
        }
        t = _table(data, field, names, names)
        f = f"{field}.days_since_onset_to_infectiousness"
        table = _list(t["days_since_onset_to_infectiousness"], f, 2 * DSOS_SPAN + 1)
        f_rt = f"{field}.report_type_when_missing"
        report_type = _int(t["report_type_when_missing"], f_rt, 1, int(ReportType.RECURSIVE))
        return cls(
            tuple(Infectiousness(_int(v, f"{f}[{i}]", 0, 2)) for i, v in enumerate(table)),
            Infectiousness(
                _int(
                    t["infectiousness_when_days_since_onset_missing"],
                    f"{field}.infectiousness_when_days_since_onset_missing",
                    0,
                    2,
                )
            ),
            ReportType(report_type),
        )


@dataclass(frozen=True, slots=True)
class DailySummariesConfig:
    """GAEN ``DailySummariesConfig`` (RISK-2 … RISK-4).

    ``attenuation_bucket_thresholds_db`` ``[t0, t1, t2]`` split typical attenuations into
    immediate (≤ t0), near (≤ t1), medium (≤ t2) and other, weighted by
    ``attenuation_bucket_weights`` in that order. ``days_since_exposure_threshold`` 0
    keeps every day.
    """

    attenuation_bucket_thresholds_db: tuple[int, int, int]
    attenuation_bucket_weights: tuple[float, float, float, float]
    report_type_weights: Mapping[ReportType, float]
    infectiousness_weights: Mapping[Infectiousness, float]
    minimum_window_score: float = 0.0
    days_since_exposure_threshold: int = 0

    @classmethod
    def parse(cls, data: object, field: str = "daily_summaries") -> DailySummariesConfig:
        """Parse and check one ``daily_summaries`` table."""
        names = {
            "attenuation_bucket_thresholds_db",
            "attenuation_bucket_weights",
            "report_type_weights",
            "infectiousness_weights",
            "minimum_window_score",
            "days_since_exposure_threshold",
        }
        t = _table(
            data, field, names, names - {"minimum_window_score", "days_since_exposure_threshold"}
        )
        f = f"{field}.attenuation_bucket_thresholds_db"
        raw = _list(t["attenuation_bucket_thresholds_db"], f, 3)
        thresholds = tuple(_int(v, f"{f}[{i}]", 0, 255) for i, v in enumerate(raw))
        for i in (1, 2):
            if thresholds[i] <= thresholds[i - 1]:
                raise ExposureConfigError(
                    f"{f}[{i}]", f"{thresholds[i]} must be > {thresholds[i - 1]}"
                )
        f = f"{field}.attenuation_bucket_weights"
        raw = _list(t["attenuation_bucket_weights"], f, 4)
        weights = tuple(_number(v, f"{f}[{i}]", 0, MAX_WEIGHT) for i, v in enumerate(raw))
        f = f"{field}.report_type_weights"
        rt_names = {r.name.lower(): r for r in WEIGHTED_REPORT_TYPES}
        rt = _table(t["report_type_weights"], f, set(rt_names), set())
        f_inf = f"{field}.infectiousness_weights"
        inf = _table(t["infectiousness_weights"], f_inf, {"standard", "high"}, set())
        return cls(
            (thresholds[0], thresholds[1], thresholds[2]),
            (weights[0], weights[1], weights[2], weights[3]),
            {r: _number(rt.get(n, 0.0), f"{f}.{n}", 0, MAX_WEIGHT) for n, r in rt_names.items()},
            {
                Infectiousness.STANDARD: _number(
                    inf.get("standard", 0.0), f"{f_inf}.standard", 0, MAX_WEIGHT
                ),
                Infectiousness.HIGH: _number(inf.get("high", 0.0), f"{f_inf}.high", 0, MAX_WEIGHT),
            },
            _number(
                t.get("minimum_window_score", 0.0), f"{field}.minimum_window_score", 0, math.inf
            ),
            _int(
                t.get("days_since_exposure_threshold", 0),
                f"{field}.days_since_exposure_threshold",
                0,
                1000,
            ),
        )


# --- Corona-Warn-App section --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MinutesAtAttenuationFilter:
    """Drop a window if its minutes at ``attenuation_range`` lie in ``drop_if_minutes_in_range``."""

    attenuation_range: Range
    drop_if_minutes_in_range: Range


@dataclass(frozen=True, slots=True)
class TrlFilter:
    """Drop a window if its transmission risk level lies in ``drop_if_trl_in_range``."""

    drop_if_trl_in_range: Range


@dataclass(frozen=True, slots=True)
class MinutesAtAttenuationWeight:
    """Weight of the seconds of scan instances whose minimum attenuation is in the range."""

    attenuation_range: Range
    weight: float


@dataclass(frozen=True, slots=True)
class NormalizedTimeToRiskLevel:
    """Risk level of a window or day whose normalized time lies in the range."""

    normalized_time_range: Range
    risk_level: RiskLevel


@dataclass(frozen=True, slots=True)
class TrlEncoding:
    """Transmission risk level = report-type offset + infectiousness offset (RISK-5)."""

    infectiousness_offset_standard: int
    infectiousness_offset_high: int
    report_type_offset_recursive: int
    report_type_offset_self_report: int
    report_type_offset_confirmed_clinical_diagnosis: int
    report_type_offset_confirmed_test: int

    def report_type_offset(self, report_type: ReportType) -> int | None:
        """The offset of ``report_type``; ``None`` for UNKNOWN and REVOKED (never scored)."""
        offsets = {
            ReportType.RECURSIVE: self.report_type_offset_recursive,
            ReportType.SELF_REPORT: self.report_type_offset_self_report,
            ReportType.CONFIRMED_CLINICAL_DIAGNOSIS: (
                self.report_type_offset_confirmed_clinical_diagnosis
            ),
            ReportType.CONFIRMED_TEST: self.report_type_offset_confirmed_test,
        }
        return offsets.get(report_type)


@dataclass(frozen=True, slots=True)
class RiskCalculationParameters:
    """Corona-Warn-App risk calculation parameters (RISK-5 … RISK-7)."""

    minutes_at_attenuation_filters: tuple[MinutesAtAttenuationFilter, ...]
    trl_filters: tuple[TrlFilter, ...]
    minutes_at_attenuation_weights: tuple[MinutesAtAttenuationWeight, ...]
    normalized_time_per_exposure_window_to_risk_level: tuple[NormalizedTimeToRiskLevel, ...]
    normalized_time_per_day_to_risk_level: tuple[NormalizedTimeToRiskLevel, ...]
    trl_encoding: TrlEncoding
    transmission_risk_value_mapping: Mapping[int, float]

    @classmethod
    def parse(cls, data: object, field: str = "risk_calculation") -> RiskCalculationParameters:
        """Parse and check one ``risk_calculation`` table."""
        names = {
            "minutes_at_attenuation_filters",
            "trl_filters",
            "minutes_at_attenuation_weights",
            "normalized_time_per_exposure_window_to_risk_level",
            "normalized_time_per_day_to_risk_level",
            "trl_encoding",
            "transmission_risk_value_mapping",
        }
        t = _table(data, field, names, names - {"minutes_at_attenuation_filters", "trl_filters"})
        f = f"{field}.minutes_at_attenuation_filters"
        filters = tuple(
            MinutesAtAttenuationFilter(
                Range.parse(
                    _table(x, f"{f}[{i}]", _MAF, _MAF)["attenuation_range"],
                    f"{f}[{i}].attenuation_range",
                ),
                Range.parse(x["drop_if_minutes_in_range"], f"{f}[{i}].drop_if_minutes_in_range"),
            )
            for i, x in enumerate(_list(t.get("minutes_at_attenuation_filters", []), f))
        )
        f = f"{field}.trl_filters"
        trl_filters = tuple(
            TrlFilter(
                Range.parse(
                    _table(x, f"{f}[{i}]", _TRLF, _TRLF)["drop_if_trl_in_range"],
                    f"{f}[{i}].drop_if_trl_in_range",
                )
            )
            for i, x in enumerate(_list(t.get("trl_filters", []), f))
        )
        f = f"{field}.minutes_at_attenuation_weights"
        weights = tuple(
            MinutesAtAttenuationWeight(
                Range.parse(
                    _table(x, f"{f}[{i}]", _MAW, _MAW)["attenuation_range"],
                    f"{f}[{i}].attenuation_range",
                ),
                _number(x["weight"], f"{f}[{i}].weight", 0, MAX_WEIGHT),
            )
            for i, x in enumerate(_list(t["minutes_at_attenuation_weights"], f))
        )
        _check_partition([w.attenuation_range for w in weights], f)
        return cls(
            filters,
            trl_filters,
            weights,
            _levels(
                t["normalized_time_per_exposure_window_to_risk_level"],
                f"{field}.normalized_time_per_exposure_window_to_risk_level",
            ),
            _levels(
                t["normalized_time_per_day_to_risk_level"],
                f"{field}.normalized_time_per_day_to_risk_level",
            ),
            _encoding(t["trl_encoding"], f"{field}.trl_encoding"),
            _trv(t["transmission_risk_value_mapping"], f"{field}.transmission_risk_value_mapping"),
        )


_MAF = {"attenuation_range", "drop_if_minutes_in_range"}
_TRLF = {"drop_if_trl_in_range"}
_MAW = {"attenuation_range", "weight"}
_NTR = {"normalized_time_range", "risk_level"}
_TRV = {"transmission_risk_level", "transmission_risk_value"}


def _levels(data: object, field: str) -> tuple[NormalizedTimeToRiskLevel, ...]:
    levels = tuple(
        NormalizedTimeToRiskLevel(
            Range.parse(
                _table(x, f"{field}[{i}]", _NTR, _NTR)["normalized_time_range"],
                f"{field}[{i}].normalized_time_range",
            ),
            RiskLevel(_int(x["risk_level"], f"{field}[{i}].risk_level", 1, 2)),
        )
        for i, x in enumerate(_list(data, field))
    )
    if not levels:
        raise ExposureConfigError(field, "must have at least one entry")
    _check_partition([x.normalized_time_range for x in levels], field)
    return levels


def _encoding(data: object, field: str) -> TrlEncoding:
    names = list(TrlEncoding.__dataclass_fields__)
    t = _table(data, field, set(names), set(names))
    return TrlEncoding(*(_int(t[n], f"{field}.{n}", 0, 100) for n in names))


def _trv(data: object, field: str) -> dict[int, float]:
    out: dict[int, float] = {}
    for i, x in enumerate(_list(data, field)):
        t = _table(x, f"{field}[{i}]", _TRV, _TRV)
        level = _int(t["transmission_risk_level"], f"{field}[{i}].transmission_risk_level", 0, 100)
        if level in out:
            raise ExposureConfigError(
                f"{field}[{i}].transmission_risk_level", f"{level} appears twice"
            )
        out[level] = _number(
            t["transmission_risk_value"], f"{field}[{i}].transmission_risk_value", 0, 100
        )
    return out


# --- the whole document ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExposureConfig:
    """The three sections of a published scoring configuration."""

    diagnosis_keys_data_mapping: DiagnosisKeysDataMapping
    daily_summaries: DailySummariesConfig
    risk_calculation: RiskCalculationParameters

    @classmethod
    def parse(cls, data: object, *, defaults: ExposureConfig | None = None) -> ExposureConfig:
        """Parse a document; a missing section is taken from ``defaults`` (else required)."""
        names = {"diagnosis_keys_data_mapping", "daily_summaries", "risk_calculation"}
        t = _table(data, "", names | {"description"}, set() if defaults else names)

        def section(name: str, parse: Any) -> Any:
            return parse(t[name], name) if name in t else getattr(defaults, name)

        return cls(
            section("diagnosis_keys_data_mapping", DiagnosisKeysDataMapping.parse),
            section("daily_summaries", DailySummariesConfig.parse),
            section("risk_calculation", RiskCalculationParameters.parse),
        )


def load_config(source: str | Path, *, use_defaults: bool = True) -> ExposureConfig:
    """Load a configuration from a ``.toml`` or ``.json`` file, or from TOML/JSON text.

    Sections the document leaves out come from :func:`default_config` unless
    ``use_defaults`` is false. Syntax errors are reported as :class:`ExposureConfigError` too.
    """
    if isinstance(source, Path):
        text, kind = source.read_text(encoding="utf-8"), source.suffix.lower()
    else:
        text, kind = source, ".json" if source.lstrip().startswith("{") else ".toml"
    try:
        data = json.loads(text) if kind == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ExposureConfigError("(document)", f"cannot be parsed: {exc}") from None
    return ExposureConfig.parse(data, defaults=default_config() if use_defaults else None)


@cache
def default_config() -> ExposureConfig:
    """The Corona-Warn-App production parameters (``cwa_production.toml``, RISK-8)."""
    text = resources.files(__package__).joinpath("cwa_production.toml").read_text("utf-8")
    return ExposureConfig.parse(tomllib.loads(text))
