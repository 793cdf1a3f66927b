"""The device's exposure record: kept matches, their windows, and the risk they add up to.

``protocol_spec/SPEC.md`` AGENT-15, AGENT-16. Every sync adds the matches it found to a
sealed list kept under the agent's retention rule (:mod:`.retention`, dated by the
sighting's time: ``retention_days``, 14 by default); the risk is recomputed from all kept
matches each time, with :func:`phe_trace.exposure.build_exposure_windows` and the health
authority's scoring configuration (Corona-Warn-App parameters by default), so matches
found by different checks add up the way one check over all of them would.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from phe_trace.crypto import CalibrationConfidence, Metadata
from phe_trace.exposure import (
    ExposureConfig,
    ExposureError,
    ExposureWindow,
    Match,
    RiskLevel,
    Sighting,
    build_exposure_windows,
    cwa_risk,
    default_config,
    load_config,
)
from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType

from .config import AgentConfig
from .errors import AgentConfigError
from .retention import Cutoff
from .store import AgentStore

__all__ = [
    "LEVELS",
    "Assessment",
    "add_windows",
    "assess",
    "decode_key",
    "encode_key",
    "load_exposure_config",
    "rank",
]

#: Risk levels, lowest first.
LEVELS = ("low", "high")


def load_exposure_config(config: AgentConfig) -> ExposureConfig:
    """The health authority's scoring configuration (``config.exposure_config``, else the
    default one)."""
    path = config.exposure_config
    try:
        return load_config(path) if path else default_config()
    except (OSError, ExposureError) as exc:
        raise AgentConfigError(f"exposure_config {path}: {exc}") from None


def rank(level: str) -> int:
    """Position of ``level`` in :data:`LEVELS` (unknown levels rank lowest)."""
    return LEVELS.index(level) if level in LEVELS else 0


@dataclass(frozen=True, slots=True)
class Assessment:
    """The total risk, the most recent exposure day (ISO date), and per-day levels."""

    level: str
    last_exposure_day: str | None
    windows: int
    #: ISO day → (risk level, the day's normalized time) for days with a risk level.
    days: dict[str, tuple[str, float]]


def encode_key(k: DiagnosisKey) -> list[Any]:
    """A diagnosis key as a JSON list (how kept matches and open keys are sealed)."""
    return [
        k.key_data.hex(),
        k.rolling_start_interval_number,
        k.rolling_period,
        k.transmission_risk_level,
        int(k.report_type),
        k.days_since_onset_of_symptoms,
    ]


def decode_key(d: list[Any]) -> DiagnosisKey:
    """The inverse of :func:`encode_key`."""
    kd, start, period, trl, rt, dsos = d
    return DiagnosisKey(bytes.fromhex(kd), start, period, trl, ReportType(rt), dsos)


def _encode(m: Match) -> dict[str, Any]:
    s = m.sighting
    return {
        "k": encode_key(m.diagnosis_key),
        "s": [
            s.rpi.hex(),
            s.aem.hex(),
            s.rssi,
            s.unix_time,
            s.rssi_correction,
            int(s.calibration_confidence),
        ],
        "j": m.interval,
        "m": m.metadata.to_bytes().hex() if m.metadata is not None else None,
    }


def _decode(d: dict[str, Any]) -> Match:
    rpi, aem, rssi, t, corr, conf = d["s"]
    key = decode_key(d["k"])
    sighting = Sighting(
        bytes.fromhex(rpi), bytes.fromhex(aem), rssi, t, corr, CalibrationConfidence(conf)
    )
    metadata = Metadata.from_bytes(bytes.fromhex(d["m"])) if d["m"] is not None else None
    return Match(key, sighting, d["j"], metadata)


def _kept(store: AgentStore, now: float, retention_days: int) -> list[dict[str, Any]]:
    """The kept matches the retention rule still keeps at ``now`` (AGENT-9)."""
    cut = Cutoff.at(now, retention_days)
    items = (store.get_meta("matches") or {}).get("items", [])
    return [d for d in items if cut.keeps(d["s"][3])]


def add_windows(
    store: AgentStore,
    matches: Iterable[Match],
    now: float,
    superseded: Iterable[tuple[bytes, int]] = (),
    *,
    retention_days: int,
) -> int:
    """Keep ``matches`` (sealed) with the earlier ones; return how many were new.

    Earlier matches of a key in ``superseded`` (key data, rolling start) are replaced:
    this check matched the key's latest published version (e.g. a revised report type,
    or REVOKED) against every kept sighting.
    """
    replaced = {(k.hex(), start) for k, start in superseded}
    kept = [d for d in _kept(store, now, retention_days) if (d["k"][0], d["k"][1]) not in replaced]
    seen = {(d["k"][0], d["k"][1], d["s"][0], d["s"][3]) for d in kept}
    added = 0
    for m in matches:
        d = _encode(m)
        ident = (d["k"][0], d["k"][1], d["s"][0], d["s"][3])
        if ident not in seen:
            seen.add(ident)
            kept.append(d)
            added += 1
    store.put_meta("matches", {"items": kept})
    return added


def windows(
    store: AgentStore, now: float, config: ExposureConfig | None = None, *, retention_days: int
) -> list[ExposureWindow]:
    """The exposure windows of every kept match (WIN-1 … WIN-6)."""
    config = config or default_config()
    matches = [_decode(d) for d in _kept(store, now, retention_days)]
    return build_exposure_windows(matches, config.diagnosis_keys_data_mapping)


def _iso_day(day: int | None) -> str | None:
    return None if day is None else (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def assess(
    store: AgentStore, now: float, config: ExposureConfig | None = None, *, retention_days: int
) -> Assessment:
    """Score the kept windows with the CWA risk calculation (RISK-5 … RISK-7)."""
    config = config or default_config()
    found = windows(store, now, config, retention_days=retention_days)
    result = cwa_risk(found, config.risk_calculation)
    high = result.total_risk_level == RiskLevel.HIGH
    last = result.most_recent_date_with_high_risk if high else result.most_recent_date_with_low_risk
    days = {
        str(_iso_day(d.day)): (
            "high" if d.risk_level == RiskLevel.HIGH else "low",
            d.normalized_time,
        )
        for d in result.days
        if d.risk_level is not None
    }
    return Assessment(
        level="high" if high else "low",
        last_exposure_day=_iso_day(last),
        windows=len(found),
        days=days,
    )
