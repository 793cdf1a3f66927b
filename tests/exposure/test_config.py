"""Scoring configuration: defaults, formats, refusals naming the field (SPEC RISK-1, RISK-8)."""

from __future__ import annotations

import copy
import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from phe_trace.exposure import ExposureConfigError, Infectiousness, default_config, load_config
from phe_trace.exposure.config import DiagnosisKeysDataMapping, ExposureConfig, Range
from phe_trace.protocol.diagnosis_key import ReportType

DEFAULT_TOML = tomllib.loads(
    resources.files("phe_trace.exposure").joinpath("cwa_production.toml").read_text("utf-8")
)


def test_defaults_are_the_cwa_production_parameters() -> None:
    """RISK-8: the values of GAEN_FACTS §2 (CWA v2 production), checked one by one."""
    c = default_config()
    d = c.daily_summaries
    assert d.attenuation_bucket_thresholds_db == (30, 50, 70)
    assert d.attenuation_bucket_weights == (1.0, 1.0, 1.0, 1.0)
    assert set(d.report_type_weights.values()) == {1.0}
    assert set(d.infectiousness_weights.values()) == {1.0}
    assert d.minimum_window_score == 0.0
    m = c.diagnosis_keys_data_mapping
    assert m.infectiousness_when_days_since_onset_missing == Infectiousness.NONE
    assert m.report_type_when_missing == ReportType.CONFIRMED_TEST
    assert len(m.days_since_onset_to_infectiousness) == 29
    r = c.risk_calculation
    [f] = r.minutes_at_attenuation_filters
    assert (0 in f.attenuation_range, 78.9 in f.attenuation_range, 79 in f.attenuation_range) == (
        True,
        True,
        False,
    )
    assert (4.99 in f.drop_if_minutes_in_range, 5 in f.drop_if_minutes_in_range) == (True, False)
    [t] = r.trl_filters
    assert [x for x in range(10) if x in t.drop_if_trl_in_range] == [1, 2]
    weights = {
        a: next(
            (w.weight for w in r.minutes_at_attenuation_weights if a in w.attenuation_range), 0.0
        )
        for a in (0, 62, 63, 72, 73, 78, 79)
    }
    assert weights == {0: 0.8, 62: 0.8, 63: 1.0, 72: 1.0, 73: 0.1, 78: 0.1, 79: 0.0}
    for mapping in (
        r.normalized_time_per_exposure_window_to_risk_level,
        r.normalized_time_per_day_to_risk_level,
    ):
        assert [e.risk_level for e in mapping if 12.99 in e.normalized_time_range] == [1]
        assert [e.risk_level for e in mapping if 13 in e.normalized_time_range] == [2]
    e = r.trl_encoding
    assert (e.infectiousness_offset_standard, e.infectiousness_offset_high) == (1, 2)
    assert (
        e.report_type_offset_recursive,
        e.report_type_offset_self_report,
        e.report_type_offset_confirmed_clinical_diagnosis,
        e.report_type_offset_confirmed_test,
    ) == (0, 2, 4, 6)


def test_toml_and_json_documents_load_alike(tmp_path: Path) -> None:
    """RISK-1: the same document as TOML and as JSON gives the same configuration."""
    doc = copy.deepcopy(DEFAULT_TOML)
    doc["daily_summaries"]["attenuation_bucket_weights"] = [2.5, 1.0, 0.5, 0.0]
    as_json = tmp_path / "config.json"
    as_json.write_text(json.dumps(doc))
    loaded = load_config(as_json)
    assert loaded.daily_summaries.attenuation_bucket_weights == (2.5, 1.0, 0.5, 0.0)
    assert load_config(json.dumps(doc)) == loaded
    partial = load_config(
        "[daily_summaries]\nattenuation_bucket_thresholds_db = [10, 20, 30]\n"
        "attenuation_bucket_weights = [1, 1, 1, 1]\n"
        "report_type_weights = {}\ninfectiousness_weights = {}\n"
    )
    assert partial.risk_calculation == default_config().risk_calculation
    assert partial.daily_summaries.report_type_weights[ReportType.CONFIRMED_TEST] == 0.0
    with pytest.raises(ExposureConfigError, match="daily_summaries: is required"):
        load_config('description = "only"\n', use_defaults=False)


def _broken(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DEFAULT_TOML)
    target: Any = doc
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        (
            "daily_summaries.attenuation_bucket_weights",
            [1, 1, 1],
            "daily_summaries.attenuation_bucket_weights",
            "exactly 4",
        ),
        (
            "daily_summaries.attenuation_bucket_weights.2",
            3.0,
            "daily_summaries.attenuation_bucket_weights[2]",
            "0..2.5",
        ),
        (
            "daily_summaries.attenuation_bucket_weights.0",
            -0.1,
            "daily_summaries.attenuation_bucket_weights[0]",
            "0..2.5",
        ),
        (
            "daily_summaries.attenuation_bucket_thresholds_db",
            [30, 30, 70],
            "daily_summaries.attenuation_bucket_thresholds_db[1]",
            "> 30",
        ),
        (
            "daily_summaries.attenuation_bucket_thresholds_db",
            [30, 50, 256],
            "daily_summaries.attenuation_bucket_thresholds_db[2]",
            "0..255",
        ),
        (
            "daily_summaries.report_type_weights.revoked",
            1.0,
            "daily_summaries.report_type_weights.revoked",
            "unknown",
        ),
        (
            "daily_summaries.infectiousness_weights.high",
            2.6,
            "daily_summaries.infectiousness_weights.high",
            "0..2.5",
        ),
        (
            "diagnosis_keys_data_mapping.days_since_onset_to_infectiousness",
            [1] * 28,
            "diagnosis_keys_data_mapping.days_since_onset_to_infectiousness",
            "exactly 29",
        ),
        (
            "diagnosis_keys_data_mapping.days_since_onset_to_infectiousness.5",
            3,
            "diagnosis_keys_data_mapping.days_since_onset_to_infectiousness[5]",
            "0..2",
        ),
        (
            "diagnosis_keys_data_mapping.report_type_when_missing",
            5,
            "diagnosis_keys_data_mapping.report_type_when_missing",
            "1..4",
        ),
        (
            "risk_calculation.minutes_at_attenuation_weights.1.attenuation_range",
            {"min": 60, "max": 73, "max_exclusive": True},
            "risk_calculation.minutes_at_attenuation_weights[1]",
            "overlaps",
        ),
        (
            "risk_calculation.minutes_at_attenuation_weights.1.attenuation_range",
            {"min": 64, "max": 73, "max_exclusive": True},
            "risk_calculation.minutes_at_attenuation_weights[1]",
            "gap",
        ),
        (
            "risk_calculation.minutes_at_attenuation_weights.2.weight",
            2.51,
            "risk_calculation.minutes_at_attenuation_weights[2].weight",
            "0..2.5",
        ),
        (
            "risk_calculation.normalized_time_per_day_to_risk_level.1.normalized_time_range",
            {"min": 12, "max": 99},
            "risk_calculation.normalized_time_per_day_to_risk_level[1]",
            "overlaps",
        ),
        (
            "risk_calculation.normalized_time_per_exposure_window_to_risk_level.1.risk_level",
            3,
            "risk_calculation.normalized_time_per_exposure_window_to_risk_level[1].risk_level",
            "1..2",
        ),
        (
            "risk_calculation.trl_filters.0.drop_if_trl_in_range",
            {"min": 3, "max": 2},
            "risk_calculation.trl_filters[0].drop_if_trl_in_range",
            "empty",
        ),
        (
            "risk_calculation.trl_encoding.report_type_offset_confirmed_test",
            "six",
            "risk_calculation.trl_encoding.report_type_offset_confirmed_test",
            "integer",
        ),
        (
            "risk_calculation.transmission_risk_value_mapping.1.transmission_risk_level",
            1,
            "risk_calculation.transmission_risk_value_mapping[1].transmission_risk_level",
            "twice",
        ),
        ("risk_calculation.typo", 1, "risk_calculation.typo", "unknown"),
    ],
)
def test_invalid_configuration_names_the_field(
    path: str, value: Any, field: str, words: str
) -> None:
    """RISK-1: every refusal names the field's dotted path and the rule it breaks."""
    with pytest.raises(ExposureConfigError) as info:
        ExposureConfig.parse(_broken(path, value))
    assert info.value.field == field
    assert str(info.value).startswith(field + ":")
    assert words in str(info.value)


def test_syntax_errors_are_config_errors() -> None:
    """RISK-1: a document that does not parse is refused the same way."""
    with pytest.raises(ExposureConfigError, match="cannot be parsed"):
        load_config("[daily_summaries\n")
    with pytest.raises(ExposureConfigError, match="cannot be parsed"):
        load_config("{not json")


def test_range_ends() -> None:
    """RISK-1: inclusive and exclusive ends."""
    r = Range(1, 2, min_exclusive=True, max_exclusive=False)
    assert (1 in r, 1.5 in r, 2 in r) == (False, True, True)


@pytest.mark.parametrize("dsos", [15, -15, 10_000, -10_000, None])
def test_days_since_onset_outside_the_table_counts_as_missing(dsos: int | None) -> None:
    """WIN-5: |days since onset| > 14 gets infectiousness_when_days_since_onset_missing,
    as a key without days since onset does (not NONE)."""
    mapping = DiagnosisKeysDataMapping.parse(
        {
            "days_since_onset_to_infectiousness": [1] * 29,
            "infectiousness_when_days_since_onset_missing": 2,
            "report_type_when_missing": 1,
        }
    )
    assert mapping.infectiousness(dsos) == Infectiousness.HIGH
    assert mapping.infectiousness(14) == mapping.infectiousness(-14) == Infectiousness.STANDARD
