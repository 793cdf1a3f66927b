"""Keys read as columns (DiagnosisKeyColumns, the bulk reader of export_keys) against the
protobuf runtime's reading of the same bytes.

The export bodies are written here by hand from the protobuf wire format, with what a
reader meets in the wild besides the reference layout: fields in any order, repeated
fields (the last wins), unknown fields, non-minimal and ten-byte varints, key data of
other lengths or absent, messages of 128 bytes or more, runs of one layout broken by
another, and keys and revised keys interleaved. Whatever the bytes, the columns must hold
exactly the keys the runtime reads (``decode_export_bin`` without ``columns``), SPEC EXP-4.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phe_trace.protocol import export, export_keys
from phe_trace.protocol.diagnosis_key import DiagnosisKey, DiagnosisKeyColumns, ReportType

HEADER = b"EK Export v1    "


def _varint(value: int, pad: int = 0) -> bytes:
    """``value`` as a varint, two's complement in ten bytes when negative, with ``pad``
    extra continuation bytes (a non-minimal encoding the wire format allows)."""
    value &= (1 << 64) - 1
    groups = []
    while True:
        groups.append(value & 0x7F)
        value >>= 7
        if not value:
            break
    groups += [0] * min(pad, 10 - len(groups))  # a varint has at most ten bytes
    return bytes(g | 0x80 for g in groups[:-1]) + bytes(groups[-1:])


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire) + payload


def _delimited(number: int, payload: bytes) -> bytes:
    return _field(number, 2, _varint(len(payload)) + payload)


# --- strategies ---------------------------------------------------------------------


def _int_field(number: int) -> st.SearchStrategy[bytes]:
    values = st.one_of(
        st.integers(0, 8),
        st.integers(2_600_000, 3_000_000),
        st.integers(0, 2**31 - 1),
        st.integers(-(2**31), -1),
        st.integers(2**31, 2**36),  # wider than 32 bits: the runtime keeps the low 32
    )
    return st.builds(lambda v, pad: _field(number, 0, _varint(v, pad)), values, st.integers(0, 2))


KEY_FIELD = st.one_of(
    st.builds(lambda data: _delimited(1, data), st.binary(min_size=16, max_size=16)),
    st.builds(lambda data: _delimited(1, data), st.binary(max_size=20)),
    _int_field(2),
    _int_field(3),
    _int_field(4),
    _int_field(5),
    _int_field(6),
    st.just(_field(9, 0, b"\x01")),  # an unknown varint field
    st.builds(lambda data: _delimited(12, data), st.binary(min_size=100, max_size=140)),
    st.just(_field(3, 2, b"\x01\x07")),  # a known field of another wire type
)


@st.composite
def reference_key(draw: st.DrawFn) -> bytes:
    """A key as the reference server writes it (EXP-3)."""
    out = _delimited(1, draw(st.binary(min_size=16, max_size=16)))
    out += _field(2, 0, _varint(draw(st.integers(0, 8))))
    out += _field(3, 0, _varint(draw(st.integers(2_600_000, 3_000_000))))
    period = draw(st.integers(1, 144))
    if period != 144:
        out += _field(4, 0, _varint(period))
    kind = draw(st.integers(0, 6))
    if kind:
        out += _field(5, 0, _varint(kind))
    onset = draw(st.one_of(st.none(), st.integers(-14, 14)))
    if onset is not None:
        out += _field(6, 0, _varint(((onset << 1) ^ (onset >> 31)) & 0xFFFFFFFF))
    return out


@st.composite
def key_runs(draw: st.DrawFn) -> list[bytes]:
    """Keys in runs: a layout repeated with other values, then another layout."""
    keys: list[bytes] = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            keys += draw(st.lists(reference_key(), min_size=1, max_size=12))
        else:
            layout = draw(st.lists(KEY_FIELD, max_size=7))
            keys += [b"".join(layout)] * draw(st.integers(1, 3))
    return keys


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    body = _field(1, 1, struct.pack("<Q", 1_700_000_000)) + _delimited(3, b"ZZ")
    for key in draw(key_runs()):
        field = 8 if draw(st.integers(0, 9)) == 0 else 7
        body += _delimited(field, key)
        if draw(st.integers(0, 19)) == 0:
            body += _field(15, 0, _varint(draw(st.integers(0, 2**40))))  # unknown, top level
    return HEADER + body


def _tuples(content: export.TemporaryExposureKeyExport) -> tuple[tuple[DiagnosisKey, ...], ...]:
    return tuple(content.keys), tuple(content.revised_keys)


# --- the bulk reader against the runtime --------------------------------------------


@settings(max_examples=200, deadline=None)
@given(bodies())
def test_columns_hold_the_keys_the_runtime_reads(data: bytes) -> None:
    """EXP-4: whatever the bytes, the columns hold the keys the runtime reads."""
    runtime = export.decode_export_bin(data)
    columns = export.decode_export_bin(data, columns=True)
    assert isinstance(columns.keys, DiagnosisKeyColumns)
    assert isinstance(columns.revised_keys, DiagnosisKeyColumns)
    assert _tuples(columns) == (runtime.keys, runtime.revised_keys)
    assert columns == runtime  # the rest of the export too, and columns equal tuples


@settings(max_examples=100, deadline=None)
@given(st.lists(reference_key(), min_size=1, max_size=200))
def test_reference_layouts_are_read_without_the_runtime(keys: list[bytes]) -> None:
    """EXP-4: keys as the reference server writes them are read in bulk: the runtime reads none
    of them one by one (the bulk reader does not fall back)."""
    body = b"".join(_delimited(7, key) for key in keys)

    def refuse(_: object) -> DiagnosisKeyColumns:
        raise AssertionError("a reference key was read by the runtime")

    read = export_keys.read_key_columns(body, refuse)
    assert read is not None
    runtime = export.decode_export_bin(HEADER + body)
    assert tuple(read[0]) == runtime.keys
    assert len(read[1]) == 0


@pytest.mark.parametrize("cut", [1, 63, 64, 65, 127, 128, 129, 300])
def test_a_long_run_broken_by_another_layout(cut: int) -> None:
    """EXP-4: a run is checked in windows of 64, 128, … records: a layout that changes inside,
    at or just after a window's edge ends the run there, and the next run starts on it."""
    keys = [
        _delimited(1, bytes([i % 256, i // 256]) * 8)
        + _field(2, 0, _varint(i % 9))
        + _field(3, 0, _varint(2_800_000 + i))
        for i in range(400)
    ]
    keys[cut] += _field(6, 0, _varint(3))  # one key with an onset: another layout
    body = b"".join(_delimited(8 if i == cut + 1 else 7, key) for i, key in enumerate(keys))
    columns = export.decode_export_bin(HEADER + body, columns=True)
    runtime = export.decode_export_bin(HEADER + body)
    assert _tuples(columns) == (runtime.keys, runtime.revised_keys)
    assert [k.rolling_start_interval_number for k in columns.revised_keys] == [2_800_001 + cut]
    assert columns.keys[cut].days_since_onset_of_symptoms == -2


def test_a_run_of_one_layout_is_read_as_one_block() -> None:
    """EXP-4: 100,000 keys of one layout (a day of a city's keys): every value read right."""
    rng = np.random.default_rng(5)
    n = 100_000
    data = rng.bytes(16 * n)
    starts = rng.integers(2_800_000, 2_900_000, n)
    risks = rng.integers(0, 9, n)
    keys = tuple(
        DiagnosisKey(data[16 * i : 16 * i + 16], int(s), 144, int(r), ReportType.CONFIRMED_TEST)
        for i, (s, r) in enumerate(zip(starts.tolist(), risks.tolist(), strict=True))
    )
    content = export.TemporaryExposureKeyExport(0, 3600, "ZZ", keys=keys)
    decoded = export.decode_export_bin(export.encode_export_bin(content), columns=True)
    assert decoded.keys == tuple(sorted(keys, key=lambda k: k.key_data))


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        # the last of a repeated field wins
        (_delimited(1, b"\x01" * 16) + _field(3, 0, b"\x05") + _field(3, 0, b"\x07"), 7),
        # a negative int32 in ten bytes
        (_delimited(1, b"\x01" * 16) + _field(3, 0, _varint(-5)), -5),
        # a value over 32 bits keeps its low 32 bits
        (_delimited(1, b"\x01" * 16) + _field(3, 0, _varint(2**32 + 9)), 9),
        (_delimited(1, b"\x01" * 16) + _field(3, 0, _varint(2**34 + 7)), 7),
    ],
)
def test_odd_fields_read_as_the_runtime_reads_them(key: bytes, expected: int) -> None:
    """EXP-4: a repeated field, a ten-byte varint, a value over 32 bits: as the runtime."""
    decoded = export.decode_export_bin(HEADER + _delimited(7, key), columns=True)
    assert decoded.keys[0].rolling_start_interval_number == expected
    assert decoded.keys == export.decode_export_bin(HEADER + _delimited(7, key)).keys


def test_a_key_of_the_same_length_and_tags_but_shorter_varints_is_another_layout() -> None:
    """EXP-4: the second key has the first one's length and tags at the same places, but its
    start is a one-byte varint followed by two unknown fields where the first key's
    five-byte varint is: it is read as the runtime reads it, not as the first key's layout.
    """
    data = _delimited(1, b"\x07" * 16)
    first = data + _field(3, 0, _varint(2_800_000, pad=1)) + _field(2, 0, b"\x01")
    second = data + _field(3, 0, b"\x05") + b"\x48\x01\x48\x01" + _field(2, 0, b"\x01")
    assert len(first) == len(second)
    body = _delimited(7, first) + _delimited(7, second)
    decoded = export.decode_export_bin(HEADER + body, columns=True)
    assert [k.rolling_start_interval_number for k in decoded.keys] == [2_800_000, 5]
    assert decoded.keys == export.decode_export_bin(HEADER + body).keys


def test_days_since_onset_and_report_types() -> None:
    """EXP-4: sint32 zigzag, presence of a zero onset, an unknown report type read as UNKNOWN."""
    base = _delimited(1, b"\x02" * 16)
    keys = [
        base + _field(6, 0, _varint(0)),  # onset given as 0
        base + _field(6, 0, _varint(27)),  # -14
        base + _field(6, 0, _varint(28)) + _field(5, 0, _varint(5)),  # 14, REVOKED
        base + _field(5, 0, _varint(42)),  # unknown report type
        base,
    ]
    body = b"".join(_delimited(7, k) for k in keys)
    decoded = export.decode_export_bin(HEADER + body, columns=True)
    onsets = [k.days_since_onset_of_symptoms for k in decoded.keys]
    assert onsets == [0, -14, 14, None, None]
    kinds = [k.report_type for k in decoded.keys]
    assert (
        kinds
        == [ReportType.UNKNOWN, ReportType.UNKNOWN, ReportType.REVOKED] + [ReportType.UNKNOWN] * 2
    )
    assert all(type(k) is ReportType for k in kinds)


# --- DiagnosisKeyColumns ------------------------------------------------------------


@st.composite
def loose_keys(draw: st.DrawFn) -> DiagnosisKey:
    """Keys as a reader may hold them: any field out of range."""
    return DiagnosisKey(
        draw(st.binary(max_size=18)),
        draw(st.integers(-5, 2**32 + 5)),
        draw(st.integers(-2, 150)),
        draw(st.integers(-2, 10)),
        draw(st.sampled_from(ReportType)),
        draw(st.one_of(st.none(), st.integers(-20, 20))),
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(loose_keys(), max_size=12))
def test_columns_are_a_sequence_of_the_same_keys(keys: list[DiagnosisKey]) -> None:
    """EXP-4: columns hold the keys they are built from, malformed ones included, and say
    which are well-formed exactly as DiagnosisKey.check does."""
    columns = DiagnosisKeyColumns.from_keys(keys)
    assert len(columns) == len(keys)
    assert list(columns) == keys
    assert columns == tuple(keys) and tuple(keys) == columns
    assert columns.well_formed().tolist() == [k.check() is None for k in keys]
    if keys:
        assert columns[-1] == keys[-1]
        assert list(columns[1::2]) == keys[1::2]
        rows = list(range(len(keys)))[::-1]
        assert list(columns.take(rows)) == [keys[r] for r in rows]
    halves = DiagnosisKeyColumns.concat([columns[: len(keys) // 2], columns[len(keys) // 2 :]])
    assert halves == columns


def test_columns_refuse_a_position_outside_and_columns_of_other_lengths() -> None:
    """Misuse is refused: a position past the end, columns of unequal lengths."""
    columns = DiagnosisKeyColumns.from_keys([DiagnosisKey(b"\x00" * 16, 1)])
    with pytest.raises(IndexError):
        columns[1]
    with pytest.raises(ValueError, match="rolling_period must hold 1 values"):
        DiagnosisKeyColumns([b"\x00" * 16], [1], [144, 144], [0], [0], [0], [False])
    assert columns != (DiagnosisKey(b"\x00" * 16, 2),)
    assert columns.rolling_period.flags.writeable is False
