"""The keys of an ``export.bin`` body read in bulk, as columns (SPEC EXP-4).

A device reads about 100,000 published keys a day. The protobuf runtime makes a Python
object per key and reads its fields one call at a time (about 0.8 µs a key); here the
keys are read straight from the wire bytes with numpy, run by run:

- A key is a length-delimited top-level field (``keys`` = 7, ``revised_keys`` = 8) whose
  message is a few small fields. The first key of a run fixes a *layout*: its length, the
  order and tags of its fields, and how many bytes each varint takes.
- Every following key of the same layout sits at a fixed stride. The run is as long as
  the keys that have the layout byte for byte in their structure (tags, lengths, the
  continuation bits of each varint), checked in windows that double in size, so a file
  whose layout changes at every key costs each key a constant amount of work.
- The values are read from the run's bytes as arrays: varints summed from their 7-bit
  groups, cut to 32 bits and read as ``int32`` (``sint32`` for the days since onset), as
  the protobuf runtime reads them.

Anything else — a key with an unknown or repeated field, a field of another wire type, a
varint of more than five bytes (a negative ``int32``), a message of 128 bytes or more —
is read by the protobuf runtime, that key alone. The body must already have parsed as a
``TemporaryExposureKeyExport`` (the caller checks), and the caller compares the count of
keys read with the runtime's: any difference falls back to the runtime for the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt

from . import export_pb2 as pb
from .diagnosis_key import DiagnosisKeyColumns, ReportType

__all__ = ["KeyMessages", "read_key_columns"]

#: Reads the keys of the given serialized ``TemporaryExposureKey`` messages one by one.
KeyMessages = Callable[[Iterable[pb.TemporaryExposureKey]], DiagnosisKeyColumns]

_KEYS, _REVISED_KEYS = 7, 8
_KEY_DATA, _RISK, _START, _PERIOD, _REPORT_TYPE, _ONSET = 1, 2, 3, 4, 5, 6
_KEY_LENGTH = 16
_MAX_VARINT = 5  # an int32 of 0..2^31-1 takes at most five bytes
_FIRST_WINDOW = 64
_DEFAULT_PERIOD = 144
_REPORT_TYPE_VALUES = np.array([int(t) for t in ReportType], dtype=np.int64)


class _Layout:
    """Where the fields of one key message lie: (field, offset of its value, bytes)."""

    __slots__ = ("fields", "structure", "varints")

    def __init__(self, fields: list[tuple[int, int, int]], size: int) -> None:
        self.fields = fields
        # Positions (in a record: tag byte, length byte, message) that hold structure:
        # the two bytes of the record's head and each field's tag (and key length).
        structure = [0, 1]
        self.varints: list[tuple[int, int]] = []
        for field, offset, width in fields:
            if field == _KEY_DATA:
                structure += [2 + offset - 2, 2 + offset - 1]
            else:
                structure.append(2 + offset - 1)
                self.varints.append((2 + offset, width))
        self.structure = np.array(structure, dtype=np.intp)


def _layout(message: bytes) -> _Layout | None:
    """The layout of one key message, or None when it is not one the bulk reader reads."""
    fields: list[tuple[int, int, int]] = []
    seen: set[int] = set()
    pos, n = 0, len(message)
    while pos < n:
        tag = message[pos]
        field, wire = tag >> 3, tag & 7
        if tag >= 0x80 or field in seen or not _KEY_DATA <= field <= _ONSET:
            return None
        seen.add(field)
        if field == _KEY_DATA:
            if wire != 2 or pos + 1 >= n or message[pos + 1] != _KEY_LENGTH:
                return None
            fields.append((field, pos + 2, _KEY_LENGTH))
            pos += 2 + _KEY_LENGTH
            continue
        if wire != 0:
            return None
        end = pos + 1
        while end < n and message[end] >= 0x80 and end - pos < _MAX_VARINT:
            end += 1
        if end >= n or message[end] >= 0x80:
            return None
        fields.append((field, pos + 1, end - pos))
        pos = end + 1
    if pos != n or _KEY_DATA not in seen:
        return None
    return _Layout(fields, n)


def _run_length(data: npt.NDArray[np.uint8], pos: int, stride: int, layout: _Layout) -> int:
    """How many records from ``pos`` (the first one included) share its layout."""
    available = (len(data) - pos) // stride
    template = data[pos : pos + stride]
    expected = template[layout.structure]
    done, window = 0, _FIRST_WINDOW
    while done < available:
        m = min(window, available - done)
        start = pos + done * stride
        rows = data[start : start + m * stride].reshape(m, stride)
        ok = (rows[:, layout.structure] == expected).all(axis=1)
        for offset, width in layout.varints:
            for j in range(width - 1):
                ok &= rows[:, offset + j] >= 0x80
            ok &= rows[:, offset + width - 1] < 0x80
        bad = np.flatnonzero(~ok)
        if bad.size:
            return done + int(bad[0])
        done += m
        window *= 2
    return done


def _int32(rows: npt.NDArray[np.uint8], offset: int, width: int) -> npt.NDArray[np.int64]:
    """A varint column read as protobuf reads an int32: its low 32 bits, signed."""
    value = np.zeros(len(rows), dtype=np.int64)
    for j in range(width):
        value |= (rows[:, offset + j].astype(np.int64) & 0x7F) << (7 * j)
    value &= 0xFFFFFFFF
    return np.where(value >= 1 << 31, value - (1 << 32), value)


def _columns(rows: npt.NDArray[np.uint8], layout: _Layout) -> DiagnosisKeyColumns:
    """The keys of a run of records of one layout."""
    m = len(rows)
    values: dict[int, npt.NDArray[np.int64]] = {}
    data: list[bytes] = []
    for field, offset, width in layout.fields:
        if field == _KEY_DATA:
            block = np.ascontiguousarray(rows[:, 2 + offset : 2 + offset + _KEY_LENGTH]).tobytes()
            data = [block[i : i + _KEY_LENGTH] for i in range(0, len(block), _KEY_LENGTH)]
        else:
            values[field] = _int32(rows, 2 + offset, width)
    zeros = np.zeros(m, dtype=np.int64)
    kinds = values.get(_REPORT_TYPE, zeros)
    kinds = np.where(np.isin(kinds, _REPORT_TYPE_VALUES), kinds, int(ReportType.UNKNOWN))
    onset = values.get(_ONSET)
    if onset is None:
        days, given = zeros, np.zeros(m, dtype=np.bool_)
    else:
        raw = onset & 0xFFFFFFFF
        days, given = (raw >> 1) ^ -(raw & 1), np.ones(m, dtype=np.bool_)
    return DiagnosisKeyColumns(
        data,
        values.get(_START, zeros),
        values.get(_PERIOD, np.full(m, _DEFAULT_PERIOD, dtype=np.int64)),
        values.get(_RISK, zeros),
        kinds,
        days,
        given,
    )


def _varint(body: bytes, pos: int) -> tuple[int, int] | None:
    """The varint at ``pos`` and the position after it; None when malformed or cut."""
    value = 0
    for shift in range(10):
        if pos + shift >= len(body):
            return None
        byte = body[pos + shift]
        value |= (byte & 0x7F) << (7 * shift)
        if byte < 0x80:
            return value, pos + shift + 1
    return None


def read_key_columns(
    body: bytes, one_by_one: KeyMessages
) -> tuple[DiagnosisKeyColumns, DiagnosisKeyColumns] | None:
    """``keys`` and ``revised_keys`` of the serialized ``TemporaryExposureKeyExport``
    ``body`` as columns; the keys the bulk reader does not read are read by ``one_by_one``
    (the protobuf runtime's reader). None when the body is not a message this reader walks
    (the caller then reads it with the runtime alone)."""
    data = np.frombuffer(body, dtype=np.uint8)
    parts: dict[int, list[DiagnosisKeyColumns]] = {_KEYS: [], _REVISED_KEYS: []}
    pos, n = 0, len(body)
    while pos < n:
        head = _varint(body, pos)
        if head is None:
            return None
        tag, after = head
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            skipped = _varint(body, after)
            if skipped is None:
                return None
            pos = skipped[1]
        elif wire in (1, 5):
            pos = after + (8 if wire == 1 else 4)
        elif wire == 2:
            size = _varint(body, after)
            if size is None:
                return None
            length, start = size
            end = start + length
            if end > n:
                return None
            if field not in parts:
                pos = end
                continue
            layout = _layout(body[start:end]) if start - pos == 2 else None
            if layout is None:
                parts[field].append(
                    one_by_one([pb.TemporaryExposureKey.FromString(body[start:end])])
                )
                pos = end
                continue
            stride = end - pos
            count = _run_length(data, pos, stride, layout)
            rows = data[pos : pos + count * stride].reshape(count, stride)
            parts[field].append(_columns(rows, layout))
            pos += count * stride
        else:
            return None
    if pos != n:
        return None
    return (
        DiagnosisKeyColumns.concat(parts[_KEYS]) if parts[_KEYS] else _empty(),
        DiagnosisKeyColumns.concat(parts[_REVISED_KEYS]) if parts[_REVISED_KEYS] else _empty(),
    )


def _empty() -> DiagnosisKeyColumns:
    return DiagnosisKeyColumns((), [], [], [], [], [], [])
