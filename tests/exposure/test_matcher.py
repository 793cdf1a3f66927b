"""The matcher against hand-built cases (SPEC MATCH-1 … MATCH-7)."""

from __future__ import annotations

import pytest

from phe_trace import crypto
from phe_trace.exposure import MatchInputError, RejectedKey, Sighting, SightingError, match
from phe_trace.exposure import matcher as matcher_module
from phe_trace.protocol.diagnosis_key import DiagnosisKey, ReportType

from .support import DAY0, key, sighting_of


def _pairs(result) -> set[tuple[bytes, int, bytes]]:  # type: ignore[no-untyped-def]
    return {(m.diagnosis_key.key_data, m.interval, m.sighting.rpi) for m in result.matches}


def _positions(start: int, period: int) -> list[int]:
    """The identifiers at the start, in the middle and at the end of a key."""
    return sorted({start, start + period // 2, start + period - 1})


@pytest.mark.parametrize(
    ("start", "period"), [(DAY0, 144), (DAY0 + 57, 89), (DAY0 + 3, 2), (DAY0 + 3, 1)]
)
def test_each_identifier_matches_within_twelve_intervals_of_its_own(
    start: int, period: int
) -> None:
    """MATCH-3: RPI_j heard during j−12 or j+12 matches; during j−13 or j+13 it does not
    — for j at the start, in the middle and at the end of the key, whatever its period."""
    k = key(1, start, period)
    for j in _positions(start, period):
        inside = [
            sighting_of(k, j, at_interval=j - 12, offset_seconds=0),
            sighting_of(k, j, at_interval=j + 12, offset_seconds=599.9),
        ]
        outside = [
            sighting_of(k, j, at_interval=j - 13, offset_seconds=599.9),
            sighting_of(k, j, at_interval=j + 13, offset_seconds=0),
        ]
        result = match([k], inside + outside, workers=1)
        assert [(m.interval, m.sighting.unix_time) for m in result.matches] == [
            (j, s.unix_time) for s in inside
        ]
        assert len(match([k], outside, tolerance_intervals=13, workers=1).matches) == 2
        assert match([k], inside, tolerance_intervals=0, workers=1).matches == ()


def test_an_identifier_replayed_later_the_same_day_does_not_match() -> None:
    """MATCH-3: the window is the identifier's own, not the key's: the morning's RPI heard
    in the evening of the key's own day (inside [s − 12, s + p + 12)) matches nothing,
    while the evening's RPI heard then does."""
    k = key(2, DAY0, 144)
    morning, evening = DAY0 + 48, DAY0 + 114
    replayed = sighting_of(k, morning, at_interval=evening)
    live = sighting_of(k, evening, at_interval=evening)
    assert [m.sighting for m in match([k], [replayed, live], workers=1).matches] == [live]


def test_short_period_derives_only_its_own_intervals() -> None:
    """MATCH-2: a key with rolling period 89 and an unaligned start matches only its intervals."""
    k = key(2, DAY0 + 7, 89)
    seen = [sighting_of(k, j) for j in (DAY0 + 6, DAY0 + 7, DAY0 + 95, DAY0 + 96)]
    result = match([k], seen)
    assert sorted(m.interval for m in result.matches) == [DAY0 + 7, DAY0 + 95]


def test_overlapping_and_duplicate_keys() -> None:
    """MATCH-5: overlapping keys each match their own identifiers; a duplicate counts once."""
    a, b = key(3, DAY0, 144), key(4, DAY0 + 72, 144)
    seen = [sighting_of(a, DAY0 + 100), sighting_of(b, DAY0 + 100), sighting_of(b, DAY0 + 200)]
    result = match([a, b, a, b, a], seen)
    assert _pairs(result) == {
        (a.key_data, DAY0 + 100, seen[0].rpi),
        (b.key_data, DAY0 + 100, seen[1].rpi),
        (b.key_data, DAY0 + 200, seen[2].rpi),
    }
    assert len(result.matches) == 3
    assert result.keys_checked == 5


def test_matches_are_ordered_by_reception_time() -> None:
    """MATCH-5: the canonical order is reception time first, whatever the identifiers."""
    keys = [key(20 + i) for i in range(6)]
    seen = [sighting_of(k, DAY0 + 60 - 7 * i) for i, k in enumerate(keys)]
    result = match(keys, list(reversed(seen)))
    times = [m.sighting.unix_time for m in result.matches]
    assert len(times) == 6 and len(set(times)) == 6
    assert times == sorted(times)
    assert sorted(m.sighting.rpi for m in result.matches) != [
        m.sighting.rpi for m in result.matches
    ]


def test_same_identifier_seen_many_times_gives_one_match_per_sighting() -> None:
    """MATCH-2: every sighting of a matched identifier is reported."""
    k = key(5)
    seen = [sighting_of(k, DAY0 + 10, offset_seconds=t) for t in (1, 100, 300)]
    assert len(match([k], seen).matches) == 3


def test_unpublished_identifiers_do_not_match() -> None:
    """MATCH-2: sightings of keys that were not published match nothing."""
    published, unpublished = key(6), key(7)
    seen = [sighting_of(unpublished, DAY0 + j) for j in range(0, 144, 10)]
    assert match([published], seen).matches == ()


def test_revoked_keys_still_match_but_are_marked() -> None:
    """MATCH-2: the matcher reports what it saw; REVOKED is dropped in windows (WIN-6)."""
    k = key(8, report_type=ReportType.REVOKED)
    [m] = match([k], [sighting_of(k, DAY0 + 1)]).matches
    assert m.diagnosis_key.report_type == ReportType.REVOKED


def test_metadata_is_decrypted_and_attached() -> None:
    """MATCH-4: the AEM is decrypted with the key's AEMK; the TX power comes with the match."""
    k = key(9)
    [m] = match([k], [sighting_of(k, DAY0 + 3, tx_power=-17, rssi=-70)]).matches
    assert m.metadata is not None and m.metadata.tx_power_dbm == -17
    assert m.attenuation_db == 53
    bad = sighting_of(k, DAY0 + 4, metadata=bytes([0x00, 0, 0, 0]))  # major version 0
    [m] = match([k], [bad]).matches
    assert m.metadata is None and m.attenuation_db is None


def test_malformed_keys_are_refused_one_by_one() -> None:
    """MATCH-6: bad keys are listed with position and reason; good keys still match."""
    good = key(10)
    bad = [
        DiagnosisKey(b"\x01" * 15, DAY0),
        DiagnosisKey(b"\x02" * 16, DAY0, 0),
        DiagnosisKey(b"\x03" * 16, DAY0, 145),
        DiagnosisKey(b"\x04" * 16, DAY0, 144, 9),
        DiagnosisKey(b"\x05" * 16, -1),
        DiagnosisKey(b"\x06" * 16, crypto.MAX_INTERVAL, 2),
        "not a key",
        DiagnosisKey(b"\x07" * 16, "2642976"),  # type: ignore[arg-type]
    ]
    keys = [bad[0], good, *bad[1:]]
    result = match(keys, [sighting_of(good, DAY0 + 5)])  # type: ignore[arg-type]
    assert len(result.matches) == 1 and result.keys_checked == len(keys)
    assert [r.position for r in result.rejected] == [0, 2, 3, 4, 5, 6, 7, 8]
    assert result.keys_rejected == 8
    reasons = " ".join(r.reason for r in result.rejected)
    for word in ("key_data", "rolling_period", "transmission_risk_level", "DiagnosisKey"):
        assert word in reasons
    assert all(isinstance(r, RejectedKey) for r in result.rejected)
    assert b"\x01".hex() * 15 not in reasons


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 8192])
@pytest.mark.parametrize(
    "bad",
    [
        DiagnosisKey(b"\x04" * 16, DAY0, 144, 9),
        DiagnosisKey(b"\x03" * 16, DAY0, 145),
        DiagnosisKey(b"\x06" * 16, crypto.MAX_INTERVAL, 2),
    ],
    ids=["risk-9", "period-145", "past-uint32"],
)
def test_one_malformed_key_among_good_ones_is_refused_at_its_position(
    bad: DiagnosisKey, chunk_size: int
) -> None:
    """MATCH-6: the only bad key of an input, in any chunk, is refused by its input position
    while the keys around it still match."""
    good = [key(30 + i) for i in range(5)]
    keys = [*good[:3], bad, *good[3:]]
    seen = [sighting_of(k, DAY0 + 9) for k in good]
    result = match(keys, seen, chunk_size=chunk_size)
    assert [r.position for r in result.rejected] == [3]
    assert {m.diagnosis_key.key_data for m in result.matches} == {k.key_data for k in good}
    assert result.keys_checked == 6


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"tolerance_intervals": -1}, "tolerance_intervals"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"workers": 0}, "workers"),
        ({"tolerance_intervals": True}, "tolerance_intervals"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, int], word: str) -> None:
    """MATCH-1: arguments out of range raise MatchInputError naming them."""
    with pytest.raises(MatchInputError, match=word):
        match([key(1)], [], **kwargs)
    with pytest.raises(MatchInputError, match="Sighting"):
        match([key(1)], ["x"])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rpi", b"\x00" * 15),
        ("aem", b"\x00" * 5),
        ("aem", b"\x00" * 3),
        ("rssi", 1000),
        ("unix_time", -1.0),
        ("unix_time", float("nan")),
        ("rssi_correction", 1.5),
    ],
)
def test_bad_sightings_are_refused(field: str, value: object) -> None:
    """MATCH-1: a Sighting checks its fields at construction."""
    fields: dict[str, object] = {
        "rpi": b"\x00" * 16,
        "aem": b"\x00" * 4,
        "rssi": -50,
        "unix_time": 1.0e9,
    }
    fields[field] = value
    with pytest.raises(SightingError, match=field):
        Sighting(**fields)  # type: ignore[arg-type]


def test_process_pool_gives_the_same_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    """MATCH-7: the forked pool path, chunk by chunk, equals the in-process path."""
    keys = [key(100 + i, DAY0 + 144 * (i % 3)) for i in range(60)]
    seen = [
        sighting_of(keys[i], keys[i].rolling_start_interval_number + i) for i in range(0, 60, 7)
    ]
    serial = match(keys, seen, workers=1)
    monkeypatch.setattr(matcher_module, "PARALLEL_MIN_KEYS", 10)
    parallel = match(keys, seen, workers=2, chunk_size=8)
    assert len(serial.matches) == 9
    assert parallel == serial


def test_no_sightings_no_matches_but_keys_are_still_checked() -> None:
    """MATCH-6: refusal does not depend on sightings."""
    result = match([key(1), DiagnosisKey(b"x", DAY0)], [])
    assert result.matches == () and result.keys_checked == 2 and result.keys_rejected == 1


def _rpi_changed_at(rpi: bytes, position: int) -> bytes:
    return rpi[:position] + bytes([rpi[position] ^ 0x5A]) + rpi[position + 1 :]


@pytest.mark.parametrize("pool", [False, True])
def test_identifiers_are_compared_on_all_16_bytes(
    pool: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MATCH-7: the table on the identifiers' first bytes is only a prefilter; a candidate
    is confirmed on all 16 bytes. Sightings whose identifier equals a published ``RPI_j``
    but for one byte — sharing its first 4, 7, 8, 12 or 15 bytes, or all but the first —
    heard in ``RPI_j``'s own interval, match nothing; the true sighting still matches.
    (In this process and in the forked pool alike.)"""
    k = key(41)
    published = [k, *(key(500 + i) for i in range(30))]
    real = sighting_of(k, DAY0 + 77)
    near = [
        Sighting(_rpi_changed_at(real.rpi, p), real.aem, real.rssi, real.unix_time)
        for p in (4, 7, 8, 9, 12, 15, 0)
    ]
    if pool:
        monkeypatch.setattr(matcher_module, "PARALLEL_MIN_KEYS", 4)
    workers, chunk = (2, 4) if pool else (1, 8192)
    assert match(published, near, workers=workers, chunk_size=chunk).matches == ()
    result = match(published, [*near, real], workers=workers, chunk_size=chunk)
    assert [(m.sighting, m.interval) for m in result.matches] == [(real, DAY0 + 77)]


class _Taken:
    """The keys as a one-pass iterator that counts how many the matcher has taken."""

    def __init__(self, keys: list[DiagnosisKey]) -> None:
        self._keys = iter(keys)
        self.taken = 0

    def __iter__(self) -> _Taken:
        return self

    def __next__(self) -> DiagnosisKey:
        value = next(self._keys)
        self.taken += 1
        return value


def _streamed_case(n: int) -> tuple[list[DiagnosisKey], list[Sighting], set[int]]:
    """``n`` keys over two days; sightings of the first, a middle and the last key."""
    keys = [key(10_000 + i, DAY0 + 144 * (i % 2)) for i in range(n)]
    hit = {0, n // 2 + 1, n - 1}
    seen = [sighting_of(keys[i], keys[i].rolling_start_interval_number + 5) for i in sorted(hit)]
    return keys, seen, hit


def _watch(monkeypatch: pytest.MonkeyPatch, stream: _Taken) -> tuple[list[int], list[int]]:
    """Record, as each chunk's matches are collected, how many keys have been taken from
    the input and not yet collected; and the keys per identifier derivation."""
    ahead: list[int] = []
    derived: list[int] = []
    collected = [0]
    add, rpis_into = matcher_module._Collector.add, matcher_module.rpis_into

    def add_spy(self, chunk, good, found):  # type: ignore[no-untyped-def]
        ahead.append(stream.taken - collected[0])
        collected[0] += len(chunk)
        return add(self, chunk, good, found)

    def rpis_spy(buf, teks, starts, counts):  # type: ignore[no-untyped-def]
        derived.append(len(teks) // 16)
        assert len(buf) == matcher_module._BLOCK_KEYS * 144 * 16  # one buffer, fixed size
        return rpis_into(buf, teks, starts, counts)

    monkeypatch.setattr(matcher_module._Collector, "add", add_spy)
    monkeypatch.setattr(matcher_module, "rpis_into", rpis_spy)
    return ahead, derived


@pytest.mark.parametrize("chunk_size", [1, 300, 5000])
def test_keys_stream_in_bounded_chunks(chunk_size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """MATCH-7: keys are consumed as a stream: in one process the matcher never holds
    more than ``chunk_size`` keys taken from the input ahead of their matching, and
    derives the identifiers of at most ``min(chunk_size, 1024)`` keys at once, into one
    buffer of fixed size — whatever the key count; the matches are those of all keys."""
    n = 2_000 if chunk_size == 1 else 6_000
    keys, seen, hit = _streamed_case(n)
    stream = _Taken(keys)
    ahead, derived = _watch(monkeypatch, stream)
    result = match(stream, seen, workers=1, chunk_size=chunk_size)
    assert stream.taken == n and result.keys_checked == n
    assert {keys.index(m.diagnosis_key) for m in result.matches} == hit
    assert len(ahead) == -(-n // chunk_size)
    assert max(ahead) <= chunk_size
    assert max(derived) <= min(chunk_size, matcher_module._BLOCK_KEYS)
    assert sum(derived) == n


def test_the_pool_keeps_a_bounded_number_of_chunks_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MATCH-7: with worker processes, the keys taken from the input and not yet
    collected are at most the look-ahead that chooses the pool, or ``2 × workers + 1``
    chunks — not the whole input; the matches equal those of one process."""
    n, chunk, workers, look_ahead = 8_000, 200, 2, 1_000
    keys, seen, hit = _streamed_case(n)
    monkeypatch.setattr(matcher_module, "PARALLEL_MIN_KEYS", look_ahead)
    stream = _Taken(keys)
    ahead, _ = _watch(monkeypatch, stream)
    result = match(stream, seen, workers=workers, chunk_size=chunk)
    assert stream.taken == n and len(ahead) == n // chunk
    assert max(ahead) <= max(look_ahead, (2 * workers + 1) * chunk) < n
    assert {keys.index(m.diagnosis_key) for m in result.matches} == hit
    assert result == match(keys, seen, workers=1)
