"""Replayed and relayed identifiers: outside the ±2 h tolerance they never match.

An attacker records a positive person's advertisement (RPI ‖ AEM) and plays it back
elsewhere or later. The matcher accepts a sighting of ``RPI_j`` only when it was
received within ``[j − 12, j + 13)`` intervals — two hours either side of that
identifier's own interval (SPEC MATCH-3) — so a replay more than two hours after the
broadcast is worthless, even on the key's own day; inside that window it matches — the
known GAEN limit the threat model names. Identifiers are computed here
with an independent reference of the key schedule (``cryptography`` only).
(SPEC MATCH-2, MATCH-3, WIN-6)
"""

from __future__ import annotations

import os

import pytest

from phe_trace.exposure import Sighting, build_exposure_windows, default_config, match
from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType
from tests.agent.reference import ref_metadata, ref_rpi

DAY_START = 2_948_400  # an ENIntervalNumber at UTC midnight (multiple of 144)
TEK = bytes.fromhex("75c734c6dd1a782de7a965da5eb93125")
KEY = DiagnosisKey(TEK, DAY_START, 144, 0, ReportType.CONFIRMED_TEST, 0)


def _heard(interval_of_rpi: int, received_interval: int) -> Sighting:
    """The advertisement of ``RPI_j`` received at the start of an interval."""
    rpi = ref_rpi(TEK, interval_of_rpi)
    aem = ref_metadata(TEK, rpi, bytes([0x40, 0xE7, 0, 0]))  # v1.0, TX power -25 dBm
    return Sighting(rpi, aem, -60, received_interval * 600.0)


@pytest.mark.parametrize(
    ("rpi_interval", "received", "matches"),
    [
        (DAY_START + 100, DAY_START + 100, True),  # heard live
        (DAY_START + 143, DAY_START + 144 + 11, True),  # relayed 2 h later: in tolerance
        (DAY_START + 143, DAY_START + 144 + 12, False),  # replayed just past it
        (DAY_START + 50, DAY_START + 50 + 12, True),  # relayed 2 h later, mid-day
        (DAY_START + 50, DAY_START + 50 + 13, False),  # replayed the same day, 2 h 10 min later
        (DAY_START + 30, DAY_START + 120, False),  # morning's identifier replayed in the evening
        (DAY_START + 100, DAY_START + 100 - 13, False),  # "pre-played" 2 h 10 min early
        (DAY_START, DAY_START - 12, True),  # the early edge
        (DAY_START, DAY_START - 13, False),
        (DAY_START + 50, DAY_START + 144 * 3, False),  # replayed days later
        (DAY_START + 50, DAY_START - 144, False),  # "pre-played" a day before (forged clock)
    ],
)
def test_replay_outside_tolerance_never_matches(
    rpi_interval: int, received: int, matches: bool
) -> None:
    """A sighting's reception time, not the RPI alone, decides (SPEC MATCH-3)."""
    result = match([KEY], [_heard(rpi_interval, received)], workers=1)
    assert bool(result.matches) is matches


def test_identifier_of_an_unpublished_or_other_day_key_never_matches() -> None:
    """RPIs outside [s, s + p) or of another key do not match (SPEC MATCH-2)."""
    outside = _heard(DAY_START + 144, DAY_START + 144)  # next day's RPI of the same TEK
    other = Sighting(
        ref_rpi(os.urandom(16), DAY_START + 5), os.urandom(4), -60, 0.0 + (DAY_START + 5) * 600
    )
    assert match([KEY], [outside, other], workers=1).matches == ()


def test_replayed_identifier_of_a_revoked_key_gives_no_window() -> None:
    """A REVOKED key still matches, but never becomes an exposure window (SPEC WIN-6)."""
    mapping = default_config().diagnosis_keys_data_mapping
    revoked = DiagnosisKey(TEK, DAY_START, 144, 0, ReportType.REVOKED, 0)
    result = match([revoked], [_heard(DAY_START + 10, DAY_START + 10)], workers=1)
    assert len(result.matches) == 1
    assert build_exposure_windows(result.matches, mapping) == []
    live = match([KEY], [_heard(DAY_START + 10, DAY_START + 10)], workers=1)
    assert len(build_exposure_windows(live.matches, mapping)) == 1  # the same, not revoked
