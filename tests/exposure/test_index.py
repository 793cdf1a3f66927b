"""The public sighting index and the bulk entry point (SPEC MATCH-9).

Known answers come from Google's GAEN v1.2 key-schedule vector: its TEK, rolling start and
the 144 identifiers and AEMs of its day. Records are laid out in a format of this test's
own (not the agent's), to show that the index reads any fixed-size record.
"""

from __future__ import annotations

import random
import struct
from typing import Any

import numpy as np
import pytest

from phe_trace.crypto import Metadata
from phe_trace.exposure import (
    MatchInputError,
    Sighting,
    SightingError,
    SightingIndex,
    match,
    match_arrays,
)
from phe_trace.exposure import matcher as matcher_module
from phe_trace.protocol.diagnosis_key import DiagnosisKey, DiagnosisKeyColumns, ReportType
from tests.vectors import load_vectors

V = load_vectors("gaen_v1_2_key_schedule")
TEK = bytes.fromhex(V["tek"])
START = int(V["rolling_start_interval_number"])
RPI = {int(c["en_interval_number"]): bytes.fromhex(c["rpi"]) for c in V["cases"]}
AEM = {int(c["en_interval_number"]): bytes.fromhex(c["aem"]) for c in V["cases"]}
#: This test's record: 4 bytes of padding, identifier, AEM, float64 time, int8 RSSI, 1 byte.
RECORD = struct.Struct("<4s16s4sdbx")
FLIPPED = RPI[START + 20][:15] + bytes([RPI[START + 20][15] ^ 1])

# (identifier, AEM, reception interval, seconds into it): rows of the test's store.
ROWS = [
    (RPI[START + 10], AEM[START + 10], START + 10, 30),  # 0: heard in its own interval
    (bytes(range(16)), bytes(4), START + 10, 0),  # 1: an unpublished identifier
    (RPI[START + 50], AEM[START + 50], START + 50 + 12, 599),  # 2: 12 intervals late
    (RPI[START + 60], AEM[START + 60], START + 60 + 13, 0),  # 3: 13 late: no match
    (RPI[START + 70], AEM[START + 70], START + 70 - 12, 0),  # 4: 12 early
    (RPI[START + 80], AEM[START + 80], START + 80 - 13, 599),  # 5: 13 early: no match
    (RPI[START + 90][:8] + bytes(8), bytes(4), START + 90, 0),  # 6: first half only
    (RPI[START + 143], AEM[START + 143], START + 143 + 12, 1),  # 7: past the key's end
    (FLIPPED, bytes(4), START + 20, 0),  # 8: one bit off in the last byte
    (RPI[START + 10], AEM[START + 10], START + 10, 30),  # 9: row 0 heard again
]
MATCHED = {0: START + 10, 2: START + 50, 4: START + 70, 7: START + 143, 9: START + 10}
SCREENED = [0, 2, 4, 6, 7, 8, 9]


def _time(row: int) -> float:
    _, _, interval, seconds = ROWS[row]
    return float(interval * 600 + seconds)


def _records() -> bytes:
    return b"".join(
        RECORD.pack(b"pad!", rpi, aem, _time(i), -50 - i) for i, (rpi, aem, _, _) in enumerate(ROWS)
    )


def _index(calls: list[int] | None = None) -> SightingIndex:
    data = _records()

    def sighting(row: int) -> Sighting:
        if calls is not None:
            calls.append(row)
        _, rpi, aem, t, rssi = RECORD.unpack_from(data, row * RECORD.size)
        return Sighting(rpi, aem, rssi, t)

    return SightingIndex.from_records(
        data, record_size=RECORD.size, rpi_offset=4, time_offset=24, sighting=sighting
    )


def _values() -> list[Sighting]:
    return [Sighting(rpi, aem, -50 - i, _time(i)) for i, (rpi, aem, _, _) in enumerate(ROWS)]


def _key(tek: bytes = TEK) -> DiagnosisKey:
    return DiagnosisKey(tek, START, 144, 6, ReportType.CONFIRMED_TEST, 0)


def test_the_bulk_entry_point_finds_the_vector_identifiers_in_their_windows() -> None:
    """MATCH-9, MATCH-2, MATCH-3: each seen identifier of the vector key, in its own
    window only; an identifier equal in its first half or in all but one bit is not one."""
    found = match_arrays(TEK, [START], [144], _index(), workers=1)
    assert len(found) == len(MATCHED)
    assert found.key.tolist() == [0] * len(MATCHED)
    assert found.sighting.tolist() == sorted(MATCHED)
    assert found.interval.tolist() == [MATCHED[r] for r in sorted(MATCHED)]


def test_the_bulk_entry_point_matches_each_key_position() -> None:
    """MATCH-9: keys are positions in the arrays; one given twice matches twice, one of
    another TEK or of a shorter period matches only its own identifiers."""
    other = random.Random(1).randbytes(16)
    found = match_arrays(other + TEK + TEK, [START, START, START], [144, 144, 60], _index())
    rows = [r for r in sorted(MATCHED)]
    early = [r for r in rows if MATCHED[r] < START + 60]
    assert list(zip(found.key.tolist(), found.sighting.tolist(), strict=True)) == [
        *((1, r) for r in rows),
        *((2, r) for r in early),
    ]


def test_the_index_built_from_arrays_or_values_is_the_same() -> None:
    """MATCH-9: records, arrays and values give the same matches."""
    rpis = b"".join(rpi for rpi, _, _, _ in ROWS)
    times = [_time(i) for i in range(len(ROWS))]
    from_arrays = SightingIndex.from_arrays(rpis, times)
    from_values = SightingIndex.from_sightings(_values())
    expected = match_arrays(TEK, [START], [144], _index())
    for index in (from_arrays, from_values):
        found = match_arrays(TEK, np.array([START]), np.array([144]), index)
        assert found.sighting.tolist() == expected.sighting.tolist() == sorted(MATCHED)
        assert found.interval.tolist() == expected.interval.tolist()


def test_match_on_an_index_makes_values_of_the_matched_rows_only() -> None:
    """MATCH-9, MATCH-4: the matches equal those of the same sightings given as values,
    the AEM decrypts to the vector's metadata, and no other row becomes a value."""
    calls: list[int] = []
    result = match([_key()], _index(calls), workers=1)
    assert result == match([_key()], _values(), workers=1)
    assert sorted(set(calls)) == sorted(MATCHED)
    by_time = sorted(MATCHED, key=_time)  # MATCH-5: reception time first
    assert [m.interval for m in result.matches] == [MATCHED[r] for r in by_time]
    expected = Metadata.from_bytes(bytes.fromhex(V["metadata"]))
    assert {m.metadata for m in result.matches} == {expected}
    assert expected.tx_power_dbm == 8


def test_candidates_are_the_rows_sharing_a_first_half_in_its_window() -> None:
    """MATCH-9, MATCH-3: the screen lets through what matches and what shares only the
    first 8 bytes of an identifier heard in that identifier's window, nothing else."""
    rows = _index().candidates(TEK, [START], [144])
    assert rows.tolist() == SCREENED


def test_the_pool_finds_the_same_as_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """MATCH-9, MATCH-7: worker processes share a large array input; same result."""
    monkeypatch.setattr(matcher_module, "PARALLEL_MIN_KEYS", 8)
    teks = random.Random(2).randbytes(16 * 40) + TEK
    starts, periods = [START] * 41, [144] * 41
    alone = match_arrays(teks, starts, periods, _index(), workers=1, chunk_size=5)
    pooled = match_arrays(teks, starts, periods, _index(), workers=2, chunk_size=5)
    assert pooled.key.tolist() == alone.key.tolist() == [40] * len(MATCHED)
    assert pooled.sighting.tolist() == alone.sighting.tolist() == sorted(MATCHED)


@pytest.mark.parametrize(
    ("teks", "starts", "periods", "names"),
    [
        (TEK[:15], [START], [144], "teks"),
        (TEK, [START, START], [144], "start_intervals"),
        (TEK, [START], [0], "rolling period"),
        (TEK, [START], [145], "rolling period"),
        (TEK, [-1], [144], "start interval"),
        (TEK, [2**32 - 10], [144], "start \\+ period"),
        (TEK, [float(START)], [144], "start_intervals"),
    ],
)
def test_keys_out_of_range_refuse_the_whole_call(
    teks: bytes, starts: list[object], periods: list[object], names: str
) -> None:
    """MATCH-9, MATCH-6: the arrays are checked whole, with an error naming the field."""
    with pytest.raises(MatchInputError, match=names):
        match_arrays(teks, starts, periods, _index())


def test_bad_sightings_and_arguments_are_refused() -> None:
    """MATCH-9, MATCH-1: times finite and >= 0; identifiers 16 bytes per time; whole
    records; a tolerance in range; an index without values cannot make matches."""
    with pytest.raises(SightingError, match="unix_time"):
        SightingIndex.from_arrays(bytes(32), [0.0, float("nan")])
    with pytest.raises(SightingError, match="unix_time"):
        SightingIndex.from_arrays(bytes(16), [-1.0])
    with pytest.raises(MatchInputError, match="16 bytes per time"):
        SightingIndex.from_arrays(bytes(31), [0.0, 1.0])
    with pytest.raises(MatchInputError, match="whole records"):
        SightingIndex.from_records(
            _records()[:-1], record_size=RECORD.size, rpi_offset=4, time_offset=24
        )
    with pytest.raises(MatchInputError, match="tolerance_intervals"):
        match_arrays(TEK, [START], [144], _index(), tolerance_intervals=-1)
    with pytest.raises(MatchInputError, match="SightingIndex"):
        match_arrays(TEK, [START], [144], _values())  # type: ignore[arg-type]
    bare = SightingIndex.from_arrays(b"".join(r for r, _, _, _ in ROWS), [0.0] * len(ROWS))
    assert len(match_arrays(TEK, [START], [144], bare)) == 0  # heard at time 0: too early
    timed = SightingIndex.from_arrays(
        b"".join(r for r, _, _, _ in ROWS), [_time(i) for i in range(len(ROWS))]
    )
    with pytest.raises(MatchInputError, match="without sighting values"):
        match([_key()], timed)


def test_an_empty_index_and_no_keys_match_nothing() -> None:
    """MATCH-9: nothing in, nothing out, with the arrays' types."""
    empty = SightingIndex.from_records(b"", record_size=RECORD.size, rpi_offset=4, time_offset=24)
    assert len(empty) == 0
    assert len(match_arrays(TEK, [START], [144], empty)) == 0
    none = match_arrays(b"", [], [], _index())
    assert none.key.dtype == np.int64 and len(none) == 0
    assert match([_key()], empty).matches == ()


def test_keys_held_as_columns_match_as_the_same_keys_as_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MATCH-9, MATCH-6: keys as columns (how a device reads a day's exports) give the
    matches and refusals of the same keys given as values — in one process and in the
    pool, a malformed key refused at its own position — and only the matched keys
    become values."""
    monkeypatch.setattr(matcher_module, "PARALLEL_MIN_KEYS", 8)
    rng = random.Random(3)
    keys = [DiagnosisKey(rng.randbytes(16), START, 144, 2, ReportType.CONFIRMED_TEST)] * 3
    keys += [
        _key(),
        DiagnosisKey(TEK[:15], START),  # refused: 15 bytes
        DiagnosisKey(TEK, START, 0),  # refused: period 0
        DiagnosisKey(TEK, START + 60, 30, 1, ReportType.SELF_REPORT, -3),
        *(DiagnosisKey(rng.randbytes(16), START) for _ in range(20)),
    ]
    columns = DiagnosisKeyColumns.from_keys(keys)
    made: list[int] = []
    real_getitem = DiagnosisKeyColumns.__getitem__

    def counting(self: DiagnosisKeyColumns, index: Any) -> Any:
        made.append(index)
        return real_getitem(self, index)

    for workers in (1, 2):
        expected = match(keys, _values(), workers=workers, chunk_size=4)
        monkeypatch.setattr(DiagnosisKeyColumns, "__getitem__", counting)
        found = match(columns, _index(), workers=workers, chunk_size=4)
        monkeypatch.setattr(DiagnosisKeyColumns, "__getitem__", real_getitem)
        assert found == expected
        assert [r.position for r in found.rejected] == [4, 5]
        assert {m.diagnosis_key for m in found.matches} == {keys[3], keys[6]}
        assert len(made) <= 4  # the two matched keys and the two refused ones
        made.clear()
