"""The publish rules as pure functions, with hand-computed expectations (SPEC PUB-11 … PUB-18)."""

from __future__ import annotations

import datetime as dt

import pytest

from phe_trace.protocol.diagnosis_key import ReportType
from phe_trace.server.errors import BadRequestError
from phe_trace.server.validation import (
    PublishRules,
    UploadedKey,
    choose_symptom_onset,
    validate_keys,
)

# 2026-11-20 12:34:56 UTC. Interval = floor(unix / 600).
NOW = int(dt.datetime(2026, 11, 20, 12, 34, 56, tzinfo=dt.UTC).timestamp())
MIDNIGHT = int(dt.datetime(2026, 11, 20, tzinfo=dt.UTC).timestamp())
TODAY = MIDNIGHT // 600  # first interval of the UTC day
RULES = PublishRules()


def key(byte: int, start: int, period: int = 144, risk: int = 0, length: int = 16) -> UploadedKey:
    return UploadedKey(bytes([byte]) * length, start, period, risk)


def run(keys: list[UploadedKey], report: ReportType = ReportType.CONFIRMED_TEST, **kw):
    return validate_keys(
        keys,
        report_type=report,
        request_onset=kw.get("onset"),
        certificate_onset=kw.get("cert_onset"),
        now=NOW,
        rules=kw.get("rules", RULES),
    )


def test_key_count_bounds() -> None:
    """0 keys or more than 30 refuse the whole upload (SPEC PUB-11)."""
    with pytest.raises(BadRequestError):
        run([])
    with pytest.raises(BadRequestError):
        run([key(i, TODAY - 144 * (i + 1)) for i in range(31)])


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (key(9, TODAY - 144, length=15), "key length 15"),
        (key(9, TODAY - 144, period=0), "rollingPeriod 0"),
        (key(9, TODAY - 144, period=145), "rollingPeriod 145"),
        (key(9, TODAY - 144, risk=9), "transmissionRisk 9"),
        # ends 16 days before now: older than 15 days
        (key(9, TODAY - 144 * 17), "older than"),
        (key(9, TODAY + 144), "in the future"),
    ],
)
def test_bad_key_dropped_with_warning(bad: UploadedKey, fragment: str) -> None:
    """One bad key is dropped, named by position, field, value and bound (SPEC PUB-12)."""
    result = run([key(1, TODAY - 144), bad])
    assert [a.key.key_data for a in result.accepted] == [b"\x01" * 16]
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith("key 1:") and fragment in result.warnings[0]
    assert "\x09" not in result.warnings[0]


def test_a_key_may_start_at_the_current_interval_but_not_after() -> None:
    """PUB-12: a key starting at ENIN(now) is kept; one starting an interval later is dropped
    as in the future."""
    now_interval = NOW // 600
    assert len(run([key(1, now_interval, 1)]).accepted) == 1
    result = run([key(1, TODAY - 144), key(2, now_interval + 1, 1)])
    assert [a.key.key_data[0] for a in result.accepted] == [1]
    assert result.warnings[0].startswith("key 1:") and "in the future" in result.warnings[0]


def test_age_boundary() -> None:
    """A key ending exactly 15 days ago is still accepted (start+period ≥ ENIN(now−15d))."""
    oldest = (NOW - 15 * 86400) // 600
    result = run([key(1, oldest - 144, 144)])
    assert len(result.accepted) == 1
    with pytest.raises(BadRequestError):
        run([key(1, oldest - 145, 144)])


def test_keys_may_touch_but_not_overlap_by_one_interval() -> None:
    """PUB-13: a key starting where the previous one ends is accepted; one starting an
    interval earlier overlaps it and refuses the upload."""
    touching = run([key(1, TODAY - 288, 144), key(2, TODAY - 144, 144)])
    assert len(touching.accepted) == 2
    with pytest.raises(BadRequestError, match="overlaps"):
        run([key(1, TODAY - 288, 144), key(2, TODAY - 145, 144)])


def test_overlap_and_same_start() -> None:
    """Overlaps, duplicates refuse the upload; 3 may share a start (PUB-13, PUB-14, PUB-18)."""
    with pytest.raises(BadRequestError, match="overlaps"):
        run([key(1, TODAY - 144), key(2, TODAY - 100, 10)])
    shared = run([key(1, TODAY - 144, 144), key(2, TODAY - 144, 72), key(3, TODAY - 144, 10)])
    assert len(shared.accepted) == 3
    with pytest.raises(BadRequestError, match="share"):
        run([key(i, TODAY - 144, 10 + i) for i in range(4)])
    with pytest.raises(BadRequestError, match="twice"):
        run([key(1, TODAY - 144), key(1, TODAY - 288)])


def test_symptom_onset_choice() -> None:
    """Request onset if within 28 days, else certificate's, else 4 days ago (SPEC PUB-15)."""
    request_onset = TODAY - 3 * 144
    assert choose_symptom_onset(request_onset, TODAY - 144, NOW, RULES) == request_onset
    too_old = TODAY - 29 * 144
    assert choose_symptom_onset(too_old, TODAY - 144, NOW, RULES) == TODAY - 144
    assert choose_symptom_onset(None, None, NOW, RULES) == TODAY - 4 * 144
    assert choose_symptom_onset(NOW // 600 + 1, None, NOW, RULES) == TODAY - 4 * 144


def test_symptom_onset_window_edges() -> None:
    """PUB-15: an onset is taken from [ENIN(UTC midnight of now − 28 days), ENIN(now)):
    the first interval of that day and the interval before now are taken, the interval of
    now and the one before the window are not (the certificate's onset is used instead)."""
    now_interval = NOW // 600
    lowest = (MIDNIGHT - 28 * 86400) // 600
    fallback = TODAY - 144
    for taken in (lowest, now_interval - 1):
        assert choose_symptom_onset(taken, fallback, NOW, RULES) == taken
        assert choose_symptom_onset(None, taken, NOW, RULES) == taken
    for refused in (lowest - 1, now_interval):
        assert choose_symptom_onset(refused, fallback, NOW, RULES) == fallback


def test_days_since_onset_of_fourteen_is_kept_and_fifteen_removed() -> None:
    """PUB-15: ±14 days since onset stay on the key; ±15 are removed with a warning."""
    onset = TODAY - 15 * 144
    result = run([key(1, TODAY - 144), key(2, TODAY - 2 * 144)], onset=onset)
    by_key = {a.key.key_data[0]: a.key.days_since_onset_of_symptoms for a in result.accepted}
    assert by_key == {1: 14, 2: 13} and result.warnings == ()
    late = run([key(1, TODAY), key(2, TODAY - 144)], onset=onset)
    by_key = {a.key.key_data[0]: a.key.days_since_onset_of_symptoms for a in late.accepted}
    assert by_key == {1: None, 2: 14}
    assert len(late.warnings) == 1 and "onset dropped" in late.warnings[0]
    before = run([key(1, TODAY - 144 * 14), key(2, TODAY - 144 * 13)], onset=TODAY)
    by_key = {a.key.key_data[0]: a.key.days_since_onset_of_symptoms for a in before.accepted}
    assert by_key == {1: -14, 2: -13}


def test_days_since_onset_and_far_onset() -> None:
    """days = key day − onset day; beyond ±14 the onset is dropped with a warning (PUB-15)."""
    onset = TODAY - 10 * 144
    result = run([key(1, TODAY - 144), key(2, TODAY - 144 * 14 + 0)], onset=onset)
    by_key = {a.key.key_data[0]: a.key.days_since_onset_of_symptoms for a in result.accepted}
    assert by_key[1] == 9
    assert by_key[2] == -4
    far = run([key(1, TODAY - 144)], onset=TODAY - 27 * 144)
    assert far.accepted[0].key.days_since_onset_of_symptoms is None
    assert "onset dropped" in far.warnings[0]


@pytest.mark.parametrize(
    ("report", "expected"),
    [
        (ReportType.CONFIRMED_TEST, 2),
        (ReportType.CONFIRMED_CLINICAL_DIAGNOSIS, 4),
        (ReportType.REVOKED, 6),
        (ReportType.SELF_REPORT, 5),
    ],
)
def test_transmission_risk_backfill(report: ReportType, expected: int) -> None:
    """A transmission risk of 0 is back-filled from the report type; others kept (PUB-17)."""
    result = run([key(1, TODAY - 144), key(2, TODAY - 288, risk=7)], report)
    risks = {a.key.key_data[0]: a.key.transmission_risk_level for a in result.accepted}
    assert risks == {1: expected, 2: 7}


def test_created_at_truncation_and_embargo() -> None:
    """created_at is the hour; a still-valid key is embargoed to its expiry (SPEC PUB-16)."""
    result = run([key(1, TODAY - 144), key(2, TODAY, 144)])
    result3 = run([key(3, NOW // 600 - 5, 7)])
    created = {
        a.key.key_data[0]: (a.created_at, a.embargoed) for a in result.accepted + result3.accepted
    }
    hour = int(dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC).timestamp())
    assert created[1] == (hour, False)
    assert created[2] == (MIDNIGHT + 86400, True)
    # key 3 ends at 12:50 (interval NOW//600 + 2, NOW is 12:34) → rounded up to 13:00
    assert created[3] == (hour + 3600, True)
    released = run([key(2, TODAY, 144)], rules=PublishRules(release_same_day_keys=True))
    assert released.accepted[0].created_at == hour
