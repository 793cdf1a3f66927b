"""The screen in front of the matcher: it passes what can match, so matches never change."""

from __future__ import annotations

import random

import pytest

from phe_trace.agent import SightingRecord
from phe_trace.agent.records import encode_sightings
from phe_trace.agent.screen import SCREEN_MAX_KEYS, candidate_sightings
from phe_trace.exposure import Sighting, match
from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType

from .conftest import T0
from .reference import ref_rpi

START = int(T0 // 600)


def _key(data: bytes, start: int, period: int = 144) -> DiagnosisKey:
    return DiagnosisKey(data, start, period, 0, ReportType.CONFIRMED_TEST, 0)


def _city(seed: int) -> tuple[list[DiagnosisKey], list[SightingRecord], dict[bytes, int]]:
    """Keys, stored records and the identifiers of the keys with their intervals
    (reference derivation).

    Records: identifiers of published keys heard inside and outside their own reception
    window (±12 intervals, MATCH-3), identifiers that share only their first 8 bytes with
    a key's, and random ones.
    """
    rng = random.Random(seed)
    keys = [_key(rng.randbytes(16), START + 144 * rng.randrange(0, 3)) for _ in range(20)]
    keys.append(_key(rng.randbytes(16), START, period=72))
    identifiers = {
        ref_rpi(k.key_data, k.rolling_start_interval_number + j): k.rolling_start_interval_number
        + j
        for k in keys
        for j in range(k.rolling_period)
    }
    records = []
    for rpi, j in rng.sample(sorted(identifiers.items()), 60):
        late = rng.choice([0, 0, 0, 12, -12, 13, -13, 30])  # beyond ±12 intervals: too late
        t = (j + late) * 600 + rng.randrange(600)
        records.append(SightingRecord(rpi, rng.randbytes(4), t, 0, -60, rng.randrange(-90, -40), 1))
        if rng.random() < 0.3:  # same first 8 bytes, another identifier
            records.append(SightingRecord(rpi[:8] + rng.randbytes(8), bytes(4), t, 0, -60, -60, 1))
    for _ in range(400):
        t = T0 + rng.randrange(3 * 86400)
        records.append(SightingRecord(rng.randbytes(16), rng.randbytes(4), t, 0, -70, -70, 1))
    rng.shuffle(records)
    return keys, records, identifiers


def _in_some_window(s: Sighting, identifiers: dict[bytes, int]) -> bool:
    """Whether ``s`` shares its first 8 bytes with an identifier and was heard within 12
    intervals of that identifier's own (computed here, not with the screen's code)."""
    heard = int(s.unix_time // 600)
    return any(rpi[:8] == s.rpi[:8] and abs(heard - j) <= 12 for rpi, j in identifiers.items())


@pytest.mark.parametrize("seed", range(5))
def test_screened_sightings_give_the_same_matches_as_all(seed: int) -> None:
    """(SPEC AGENT-15, MATCH-2, MATCH-3)"""
    keys, records, identifiers = _city(seed)
    plain = encode_sightings(records)
    everything = [Sighting(r.rpi, r.aem, r.rssi_mean, r.unix_time, 3) for r in records]
    passed = candidate_sightings(plain, keys, 3)
    expected = match(keys, everything, workers=1)
    assert len(expected.matches) > 20
    assert match(keys, passed, workers=1) == expected
    assert sorted(passed, key=lambda s: (s.rpi, s.unix_time)) == sorted(
        (s for s in everything if _in_some_window(s, identifiers)),
        key=lambda s: (s.rpi, s.unix_time),
    )
    assert len(passed) < len(everything) // 4


def test_a_key_the_derivation_refuses_turns_the_screen_off() -> None:
    """A malformed key is the matcher's to refuse (MATCH-6): every sighting is passed."""
    keys, records, _ = _city(7)
    bad = _key(b"short", START)
    plain = encode_sightings(records)
    passed = candidate_sightings(plain, [*keys, bad], 0)
    assert len(passed) == len(records)
    everything = [Sighting(r.rpi, r.aem, r.rssi_mean, r.unix_time) for r in records]
    assert match([*keys, bad], passed, workers=1) == match([*keys, bad], everything, workers=1)


def test_many_keys_are_not_screened() -> None:
    keys, records, _ = _city(8)
    many = keys * (SCREEN_MAX_KEYS // len(keys) + 1)
    assert len(candidate_sightings(encode_sightings(records), many, 0)) == len(records)
