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
from collections.abc import Container, Iterable
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
from .state import KeptMatch, KeyRecord, Matches, SeenSighting
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


def encode_key(k: DiagnosisKey) -> KeyRecord:
    """A diagnosis key as kept with matches and as an open key (:mod:`.state`)."""
    return KeyRecord(
        k.key_data,
        k.rolling_start_interval_number,
        k.rolling_period,
        k.transmission_risk_level,
        int(k.report_type),
        k.days_since_onset_of_symptoms,
    )


def decode_key(d: KeyRecord) -> DiagnosisKey:
    """The inverse of :func:`encode_key`."""
    return DiagnosisKey(
        d.key_data,
        d.rolling_start_interval_number,
        d.rolling_period,
        d.transmission_risk_level,
        ReportType(d.report_type),
        d.days_since_onset_of_symptoms,
    )


def keep(m: Match) -> KeptMatch:
    """A match as kept (:class:`.state.KeptMatch`)."""
    s = m.sighting
    return KeptMatch(
        encode_key(m.diagnosis_key),
        SeenSighting(
            s.rpi, s.aem, s.rssi, s.unix_time, s.rssi_correction, int(s.calibration_confidence)
        ),
        m.interval,
        m.metadata.to_bytes() if m.metadata is not None else None,
    )


def kept_match(m: KeptMatch) -> Match:
    """The inverse of :func:`keep`."""
    s = m.sighting
    sighting = Sighting(
        s.rpi,
        s.aem,
        s.rssi,
        s.unix_time,
        s.rssi_correction,
        CalibrationConfidence(s.calibration_confidence),
    )
    meta = Metadata.from_bytes(m.metadata) if m.metadata is not None else None
    return Match(decode_key(m.key), sighting, m.interval, meta)


def _encode(m: Match) -> dict[str, Any]:
    """A match as kept, in its stored JSON (:class:`.state.KeptMatch`)."""
    return keep(m).to_json()


def _kept(store: AgentStore, now: float, retention_days: int) -> list[KeptMatch]:
    """The kept matches the retention rule still keeps at ``now`` (AGENT-9)."""
    cut = Cutoff.at(now, retention_days)
    return [m for m in store.load(Matches).items if cut.keeps(m.sighting.unix_time)]


def add_windows(
    store: AgentStore,
    matches: Iterable[Match],
    now: float,
    superseded: Container[tuple[bytes, int]] = frozenset(),
    *,
    retention_days: int,
) -> int:
    """Keep ``matches`` (sealed) with the earlier ones; return how many were new.

    Earlier matches of a key in ``superseded`` (key data, rolling start) are replaced:
    this check matched the key's latest published version (e.g. a revised report type,
    or REVOKED) against every kept sighting.
    """
    kept = [m for m in _kept(store, now, retention_days) if _key_ident(m) not in superseded]
    seen = {_ident(m) for m in kept}
    added = 0
    for found in matches:
        m = keep(found)
        ident = _ident(m)
        if ident not in seen:
            seen.add(ident)
            kept.append(m)
            added += 1
    store.save(Matches(kept))
    return added


def _key_ident(m: KeptMatch) -> tuple[bytes, int]:
    return m.key.key_data, m.key.rolling_start_interval_number


def _ident(m: KeptMatch) -> tuple[bytes, int, bytes, float]:
    return (*_key_ident(m), m.sighting.rpi, m.sighting.unix_time)


def windows(
    store: AgentStore, now: float, config: ExposureConfig | None = None, *, retention_days: int
) -> list[ExposureWindow]:
    """The exposure windows of every kept match (WIN-1 … WIN-6)."""
    config = config or default_config()
    matches = [kept_match(m) for m in _kept(store, now, retention_days)]
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
