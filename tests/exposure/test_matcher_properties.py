"""Properties of the matcher against an independent slow reference (SPEC MATCH-2, MATCH-3, MATCH-5).

The reference below derives every identifier with one ``crypto.rpi`` call per interval
and compares each sighting with each key — obviously correct, hopelessly slow.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from phe_trace import crypto
from phe_trace.exposure import Sighting, match
from phe_trace.protocol.diagnosis_key import DiagnosisKey

from .support import DAY0, sighting_of

TOLERANCE = 12


def reference_match(
    keys: list[DiagnosisKey], sightings: list[Sighting], tolerance: int = TOLERANCE
) -> set[tuple[DiagnosisKey, int, int]]:
    found = set()
    for k in keys:
        rpik = crypto.rpik(k.key_data)
        start, end = (
            k.rolling_start_interval_number,
            k.rolling_start_interval_number + k.rolling_period,
        )
        for j in range(start, end):
            rpi = crypto.rpi(rpik, j)
            for i, s in enumerate(sightings):
                heard = int(s.unix_time // 600)
                if s.rpi == rpi and j - tolerance <= heard <= j + tolerance:
                    found.add((k, i, j))
    return found


def as_set(result, sightings: list[Sighting]) -> set[tuple[DiagnosisKey, int, int]]:  # type: ignore[no-untyped-def]
    index = {id(s): i for i, s in enumerate(sightings)}
    return {(m.diagnosis_key, index[id(m.sighting)], m.interval) for m in result.matches}


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[DiagnosisKey], list[Sighting]]:
    n_keys = draw(st.integers(1, 5))
    keys = []
    for _ in range(n_keys):
        tek = draw(st.binary(min_size=16, max_size=16))
        start = DAY0 + draw(st.integers(0, 300))
        period = draw(st.sampled_from([1, 2, 17, 89, 143, 144]))
        keys.append(DiagnosisKey(tek, start, period, 3))
    if draw(st.booleans()):
        keys.append(keys[0])  # a duplicate
    sightings: list[Sighting] = []
    for _ in range(draw(st.integers(0, 8))):
        k = draw(st.sampled_from(keys))
        # an identifier from a little before to a little after the key's period
        j = k.rolling_start_interval_number + draw(st.integers(-2, k.rolling_period + 1))
        heard = j + draw(st.integers(-15, 15))
        sightings.append(
            sighting_of(k, j, at_interval=heard, offset_seconds=draw(st.integers(0, 599)))
        )
    for _ in range(draw(st.integers(0, 3))):
        sightings.append(
            Sighting(
                draw(st.binary(min_size=16, max_size=16)),
                bytes(4),
                -50,
                (DAY0 + draw(st.integers(0, 400))) * 600,
            )
        )
    return keys, sightings


@settings(max_examples=60, deadline=None)
@given(scenario())
def test_matcher_equals_reference(case: tuple[list[DiagnosisKey], list[Sighting]]) -> None:
    """MATCH-2, MATCH-3: a sighting matches iff the slow reference says so."""
    keys, sightings = case
    assert as_set(match(keys, sightings), sightings) == reference_match(keys, sightings)


@settings(max_examples=40, deadline=None)
@given(scenario(), st.integers(1, 7), st.randoms(use_true_random=False))
def test_order_and_chunk_size_do_not_matter(
    case: tuple[list[DiagnosisKey], list[Sighting]], chunk_size: int, rnd: random.Random
) -> None:
    """MATCH-5: shuffling keys and sightings, and any chunk size, give the same matches."""
    keys, sightings = case
    baseline = match(keys, sightings)
    shuffled_keys, shuffled_sightings = keys[:], sightings[:]
    rnd.shuffle(shuffled_keys)
    rnd.shuffle(shuffled_sightings)
    other = match(shuffled_keys, shuffled_sightings, chunk_size=chunk_size)
    assert other.matches == baseline.matches  # same values, same canonical order
