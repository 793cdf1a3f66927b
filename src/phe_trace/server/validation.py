"""The publish validation rules of GAEN's key server, as pure functions of the request.

``protocol_spec/SPEC.md`` §11 (PUB-11 … PUB-18). Nothing here touches storage or the
clock: ``now`` (unix seconds) comes in, validated :class:`AcceptedKey` values and
warnings come out. Whole-request problems (key count, duplicates, overlaps, no valid key
left) raise :class:`~phe_trace.server.errors.BadRequestError`; a single bad key is
dropped with a warning that names the key's position, the field, the value and the
bound — never the key itself.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from phe_trace.crypto import INTERVAL_SECONDS, KEY_LENGTH, MAX_INTERVAL, TEK_ROLLING_PERIOD
from phe_trace.protocol.diagnosis_key import (
    MAX_TRANSMISSION_RISK_LEVEL,
    DiagnosisKey,
    ReportType,
)

from .errors import BadRequestError
from .settings import ServerSettings

__all__ = [
    "TRANSMISSION_RISK_BACKFILL",
    "AcceptedKey",
    "PublishRules",
    "UploadedKey",
    "ValidationResult",
    "choose_symptom_onset",
    "validate_keys",
]

#: Transmission risk written when the client sent 0, by report type (GAEN key server).
TRANSMISSION_RISK_BACKFILL = {
    ReportType.CONFIRMED_TEST: 2,
    ReportType.CONFIRMED_CLINICAL_DIAGNOSIS: 4,
    ReportType.REVOKED: 6,
    ReportType.SELF_REPORT: 5,
}
_DAY = TEK_ROLLING_PERIOD


@dataclass(frozen=True, slots=True)
class PublishRules:
    """The tunable bounds of the rules (from :class:`ServerSettings`)."""

    max_keys: int = 30
    max_same_start_keys: int = 3
    max_interval_age_seconds: int = 360 * 3600
    max_symptom_onset_days: int = 14
    max_symptom_onset_report_days: int = 28
    default_symptom_onset_days_ago: int = 4
    truncate_window_seconds: int = 3600
    release_same_day_keys: bool = False

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> PublishRules:
        """The rules a server with ``settings`` applies."""
        return cls(
            max_keys=settings.max_keys_on_publish,
            max_same_start_keys=settings.max_same_start_interval_keys,
            max_interval_age_seconds=settings.max_interval_age_on_publish_hours * 3600,
            max_symptom_onset_days=settings.max_symptom_onset_days,
            max_symptom_onset_report_days=settings.max_symptom_onset_report_days,
            default_symptom_onset_days_ago=settings.default_symptom_onset_days_ago,
            truncate_window_seconds=settings.truncate_window_seconds,
            release_same_day_keys=settings.release_same_day_keys,
        )


@dataclass(frozen=True, slots=True)
class UploadedKey:
    """One key of the request after base64 decoding, before any rule."""

    key_data: bytes
    rolling_start_interval_number: int
    rolling_period: int
    transmission_risk: int


@dataclass(frozen=True, slots=True)
class AcceptedKey:
    """A key that passed the rules, with its hour-truncated (or embargoed) creation time."""

    key: DiagnosisKey
    created_at: int
    embargoed: bool


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """The keys to store and the warnings for the response."""

    accepted: tuple[AcceptedKey, ...]
    warnings: tuple[str, ...]
    symptom_onset_interval: int


def _truncate(seconds: int, window: int) -> int:
    return seconds - seconds % window


def _round_up(seconds: int, window: int) -> int:
    return -(-seconds // window) * window


def choose_symptom_onset(
    request_onset: int | None, certificate_onset: int | None, now: int, rules: PublishRules
) -> int:
    """The symptom-onset interval used for ``days_since_onset`` (PUB-15).

    The request's value if it lies in [UTC midnight of now − 28 days, now), else the
    certificate's if it does, else UTC midnight of now − 4 days.
    """
    now_interval = now // INTERVAL_SECONDS
    earliest = _truncate(now - rules.max_symptom_onset_report_days * 86400, 86400)
    lowest = earliest // INTERVAL_SECONDS
    for candidate in (request_onset, certificate_onset):
        if candidate is not None and lowest <= candidate < now_interval:
            return candidate
    default = now_interval - rules.default_symptom_onset_days_ago * _DAY
    return default - default % _DAY


def _key_problem(index: int, key: UploadedKey, now: int, rules: PublishRules) -> str | None:
    start, period = key.rolling_start_interval_number, key.rolling_period
    label = f"key {index}"
    if len(key.key_data) != KEY_LENGTH:
        return f"{label}: key length {len(key.key_data)} is not {KEY_LENGTH} bytes"
    if not 1 <= period <= TEK_ROLLING_PERIOD:
        return f"{label}: rollingPeriod {period} is outside 1..{TEK_ROLLING_PERIOD}"
    if not 0 <= key.transmission_risk <= MAX_TRANSMISSION_RISK_LEVEL:
        return (
            f"{label}: transmissionRisk {key.transmission_risk} is outside "
            f"0..{MAX_TRANSMISSION_RISK_LEVEL}"
        )
    if start + period > MAX_INTERVAL:
        return f"{label}: rollingStartNumber {start} + rollingPeriod overflows uint32"
    oldest = (now - rules.max_interval_age_seconds) // INTERVAL_SECONDS
    if start + period < oldest:
        return f"{label}: key ended at interval {start + period}, older than {oldest}"
    if start > now // INTERVAL_SECONDS:
        return f"{label}: rollingStartNumber {start} is in the future"
    return None


def _check_overlaps(keys: Sequence[UploadedKey], rules: PublishRules) -> None:
    per_start = Counter(k.rolling_start_interval_number for k in keys)
    for start, count in per_start.items():
        if count > rules.max_same_start_keys:
            raise BadRequestError(
                f"{count} keys share rollingStartNumber {start}; at most "
                f"{rules.max_same_start_keys} may"
            )
    ordered = sorted(keys, key=lambda k: (k.rolling_start_interval_number, k.rolling_period))
    for prev, cur in itertools.pairwise(ordered):
        prev_end = prev.rolling_start_interval_number + prev.rolling_period
        same_start = cur.rolling_start_interval_number == prev.rolling_start_interval_number
        if not same_start and cur.rolling_start_interval_number < prev_end:
            raise BadRequestError(
                f"key starting at {cur.rolling_start_interval_number} overlaps the key "
                f"starting at {prev.rolling_start_interval_number}"
            )


def validate_keys(
    keys: Sequence[UploadedKey],
    *,
    report_type: ReportType,
    request_onset: int | None,
    certificate_onset: int | None,
    now: int,
    rules: PublishRules,
) -> ValidationResult:
    """Apply every publish rule to ``keys`` at unix time ``now`` (PUB-11 … PUB-18)."""
    if not 1 <= len(keys) <= rules.max_keys:
        raise BadRequestError(f"{len(keys)} keys uploaded; 1..{rules.max_keys} are allowed")
    if len({k.key_data for k in keys}) != len(keys):
        raise BadRequestError("the same key appears twice in the upload")
    warnings: list[str] = []
    valid: list[UploadedKey] = []
    for index, key in enumerate(keys):
        problem = _key_problem(index, key, now, rules)
        if problem:
            warnings.append(problem + "; key dropped")
        else:
            valid.append(key)
    if not valid:
        raise BadRequestError("no valid key in the upload: " + "; ".join(warnings))
    _check_overlaps(valid, rules)
    onset = choose_symptom_onset(request_onset, certificate_onset, now, rules)
    accepted = [_accept(k, report_type, onset, now, rules, warnings) for k in valid]
    return ValidationResult(tuple(accepted), tuple(warnings), onset)


def _accept(
    key: UploadedKey,
    report_type: ReportType,
    onset: int,
    now: int,
    rules: PublishRules,
    warnings: list[str],
) -> AcceptedKey:
    start = key.rolling_start_interval_number
    days: int | None = start // _DAY - onset // _DAY
    if abs(days or 0) > rules.max_symptom_onset_days:
        warnings.append(
            f"key starting at {start}: days since symptom onset {days} is beyond "
            f"±{rules.max_symptom_onset_days}; onset dropped from the key"
        )
        days = None
    risk = key.transmission_risk or TRANSMISSION_RISK_BACKFILL.get(report_type, 0)
    end_seconds = (start + key.rolling_period) * INTERVAL_SECONDS
    still_valid = start + key.rolling_period > now // INTERVAL_SECONDS
    embargoed = still_valid and not rules.release_same_day_keys
    window = rules.truncate_window_seconds
    created = _round_up(end_seconds, window) if embargoed else _truncate(now, window)
    diagnosis = DiagnosisKey(
        key_data=key.key_data,
        rolling_start_interval_number=start,
        rolling_period=key.rolling_period,
        transmission_risk_level=risk,
        report_type=report_type,
        days_since_onset_of_symptoms=days,
    )
    return AcceptedKey(diagnosis, created, embargoed)
