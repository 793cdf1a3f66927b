"""The matcher: which published diagnosis keys did this device see, and when.

``protocol_spec/SPEC.md`` §8 (MATCH-1 … MATCH-9). Design, top-down:

1. The sightings are indexed once (:class:`SightingIndex`, public): identifiers read as
   two uint64 words, sorted by the first, plus two flag tables addressed by low bits of
   each half of the first word — a prefilter passing about 1 in 4,000 unseen identifiers
   (each table at most 4 MiB, so it stays in cache); candidates are confirmed by binary
   search on the first word and a comparison of the second. The index is built in bulk
   from arrays or from fixed-size binary records (identifier bytes and reception times,
   read with numpy): no Python object per sighting. Only the sightings that match are
   turned into :class:`Sighting` values, by a function the index's builder gives.
2. Keys stream in chunks. A chunk is packed into flat arrays (the 16-byte keys back to
   back, start and period as integer arrays) after a vectorised well-formedness check;
   malformed keys are refused one by one (MATCH-6). A caller that holds such arrays
   already passes them to :func:`match_arrays` and gets arrays back.
3. Per packed chunk, keys whose validity window ±tolerance cannot contain any sighting are
   skipped; the others' identifiers are derived in blocks of :data:`_BLOCK_KEYS` keys
   into one reused buffer (:func:`phe_trace.crypto.batch.rpis_into`), looked up in the
   table with numpy, and candidates confirmed on all 16 bytes.
4. Large inputs run the packed chunks in a pool of forked worker processes (the index is
   inherited, not copied), with a bounded number of chunks in flight so memory stays
   bounded whatever the key count (MATCH-7). Small inputs run in this process.
5. For each confirmed identifier ``RPI_j``, each of its sightings is kept only if its
   reception interval lies in ``RPI_j``'s own window ``[j − T, j + T + 1)``
   (:func:`reception_window`, MATCH-3): an identifier replayed more than the tolerance
   after it was broadcast never matches, wherever it lies in the key's day. The AEM of a
   kept match is decrypted (MATCH-4).
"""

from __future__ import annotations

import collections
import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from phe_trace.crypto import (
    INTERVAL_SECONDS,
    KEY_LENGTH,
    MAX_INTERVAL,
    RPI_LENGTH,
    TEK_ROLLING_PERIOD,
    InvalidMetadataError,
    Metadata,
    aemk,
    decrypt_metadata,
)
from phe_trace.crypto.batch import rpis_into
from phe_trace.protocol.diagnosis_key import (
    MAX_TRANSMISSION_RISK_LEVEL,
    DiagnosisKey,
    DiagnosisKeyColumns,
    ReportType,
)

from .errors import MatchInputError, SightingError
from .model import Match, MatchResult, RejectedKey, Sighting

__all__ = [
    "DEFAULT_TOLERANCE_INTERVALS",
    "ArrayMatches",
    "SightingIndex",
    "match",
    "match_arrays",
    "reception_window",
]

#: Intervals of clock drift accepted either side of an identifier's interval: ±2 h (MATCH-3).
DEFAULT_TOLERANCE_INTERVALS = 12
#: Keys per streamed chunk (and per task of the process pool).
DEFAULT_CHUNK_SIZE = 8192
#: Below this many keys the matcher stays in this process (forking costs more than it saves).
PARALLEL_MIN_KEYS = 32_768
#: Keys whose identifiers are derived into the buffer at once (2.3 MB: stays in cache).
_BLOCK_KEYS = 1024
_MAX_CHUNK_SIZE = 1 << 20
#: Prefilter table: between 2^16 and 2^22 one-byte flags, about 64 per distinct sighting.
_MIN_TABLE_BITS = 16
_MAX_TABLE_BITS = 22
_TABLE_SPARSITY = 64

Int64Array = npt.NDArray[np.int64]
#: Makes the :class:`Sighting` of a row of the index (its position in the builder's input).
SightingOf = Callable[[int], Sighting]


def reception_window(
    interval: int, tolerance: int = DEFAULT_TOLERANCE_INTERVALS
) -> tuple[int, int]:
    """The reception intervals ``[lo, hi)`` in which a sighting of ``RPI_interval`` matches.

    ``[j − T, j + T + 1)``: from ``T`` intervals before the identifier's own interval to
    ``T`` intervals after it, whatever the key's period, not capped at the key's end
    (SPEC MATCH-3). A key's identifiers together match in ``[s − T, s + p + T)``.
    """
    return interval - tolerance, interval + tolerance + 1


def _no_sighting(row: int) -> Sighting:
    raise MatchInputError("this sighting index was built without sighting values")


class SightingIndex:
    """Sightings indexed once for identifier lookup (MATCH-2, MATCH-3, MATCH-7).

    Build it with :meth:`from_sightings` (matcher values), :meth:`from_arrays` (identifiers
    back to back and reception times) or :meth:`from_records` (fixed-size binary records
    holding an identifier and a little-endian float64 time each, as a device stores them):
    the last two read identifiers and times in bulk, with no Python object per sighting.
    A *row* is a sighting's position in the builder's input. ``sighting`` (optional) makes
    the :class:`Sighting` of a row; :func:`match` calls it for the matched rows only, so
    only those are built and checked as values.

    Inside, identifiers are read as two little-endian uint64 words (``head``, ``tail``).
    Rows are sorted by head; ``table`` has one flag per value of the low bits of the
    head's low half (at most 4 MiB, so lookups stay in cache), ``table_high`` the same for
    the head's high half: only candidates passing both (about 1 in 4,000 unseen
    identifiers) reach the binary search.
    """

    def __init__(self, words: npt.NDArray[np.uint64], times: npt.NDArray[np.float64]) -> None:
        """Use :meth:`from_sightings`, :meth:`from_arrays` or :meth:`from_records`."""
        n = len(times)
        if n and not (np.isfinite(times).all() and times.min() >= 0):
            bad = times[~(np.isfinite(times) & (times >= 0))][0]
            raise SightingError(f"unix_time must be a finite number >= 0, got {float(bad)!r}")
        intervals = (times // INTERVAL_SECONDS).astype(np.int64)
        order = np.argsort(words[:, 0], kind="stable")
        self.head = np.ascontiguousarray(words[order, 0])
        self.tail = np.ascontiguousarray(words[order, 1])
        self.sighting_row = order
        self.intervals = intervals[order]
        self.min_interval = int(intervals.min()) if n else 0
        self.max_interval = int(intervals.max()) if n else -1
        self.sighting_of: SightingOf = _no_sighting
        bits = _MIN_TABLE_BITS
        while (1 << bits) < _TABLE_SPARSITY * n and bits < _MAX_TABLE_BITS:
            bits += 1
        self.mask = np.uint32((1 << bits) - 1)
        self.table = np.zeros(1 << bits, dtype=np.bool_)
        self.table[(self.head & np.uint64(self.mask)).astype(np.intp)] = True
        self.table_high = np.zeros(1 << bits, dtype=np.bool_)
        self.table_high[((self.head >> np.uint64(32)) & np.uint64(self.mask)).astype(np.intp)] = (
            True
        )

    @classmethod
    def from_sightings(cls, sightings: Iterable[Sighting]) -> SightingIndex:
        """The index of matcher values; row ``i`` is the ``i``-th sighting."""
        seen = tuple(sightings)
        for s in seen:
            if not isinstance(s, Sighting):
                raise MatchInputError(f"sightings must be Sighting values, got {type(s).__name__}")
        words = np.frombuffer(b"".join(s.rpi for s in seen), dtype="<u8").reshape(len(seen), 2)
        times = np.array([s.unix_time for s in seen], dtype=np.float64)
        index = cls(words, times)
        index.sighting_of = seen.__getitem__
        return index

    @classmethod
    def from_arrays(
        cls, rpis: bytes, unix_times: npt.ArrayLike, *, sighting: SightingOf | None = None
    ) -> SightingIndex:
        """The index of ``n`` sightings: ``rpis`` their 16-byte identifiers back to back,
        ``unix_times`` their reception times (seconds since the epoch, ``n`` numbers)."""
        times = np.asarray(unix_times, dtype=np.float64)
        if not isinstance(rpis, bytes | bytearray | memoryview) or times.ndim != 1:
            raise MatchInputError("rpis must be bytes and unix_times a flat array of numbers")
        if len(rpis) != RPI_LENGTH * len(times):
            raise MatchInputError(
                f"rpis must hold {RPI_LENGTH} bytes per time ({len(times)}), got {len(rpis)}"
            )
        words = np.frombuffer(rpis, dtype="<u8").reshape(len(times), 2)
        index = cls(words, times)
        if sighting is not None:
            index.sighting_of = sighting
        return index

    @classmethod
    def from_records(
        cls,
        data: bytes,
        *,
        record_size: int,
        rpi_offset: int,
        time_offset: int,
        sighting: SightingOf | None = None,
    ) -> SightingIndex:
        """The index of the fixed-size records back to back in ``data``: each holds its
        identifier (16 bytes) at ``rpi_offset`` and its reception time (little-endian
        float64, seconds since the epoch) at ``time_offset``; row ``i`` is record ``i``."""
        if (
            not isinstance(data, bytes | bytearray | memoryview)
            or not 0 < record_size
            or not 0 <= rpi_offset <= record_size - RPI_LENGTH
            or not 0 <= time_offset <= record_size - 8
            or len(data) % record_size
        ):
            raise MatchInputError("data must be whole records holding an identifier and a time")
        n = len(data) // record_size

        def column(offset: int, dtype: str) -> npt.NDArray[Any]:
            if not n:
                return np.empty(0, dtype=dtype)
            return np.ndarray((n,), dtype=dtype, buffer=data, offset=offset, strides=(record_size,))

        words = np.empty((n, 2), dtype=np.uint64)
        words[:, 0] = column(rpi_offset, "<u8")
        words[:, 1] = column(rpi_offset + 8, "<u8")
        index = cls(words, column(time_offset, "<f8").astype(np.float64))
        if sighting is not None:
            index.sighting_of = sighting
        return index

    def __len__(self) -> int:
        return len(self.head)

    def sighting(self, row: int) -> Sighting:
        """The :class:`Sighting` of ``row`` (made by the builder's ``sighting`` function)."""
        return self.sighting_of(row)

    def candidates(
        self,
        teks: bytes,
        start_intervals: npt.ArrayLike,
        rolling_periods: npt.ArrayLike,
        *,
        tolerance_intervals: int = DEFAULT_TOLERANCE_INTERVALS,
    ) -> Int64Array:
        """The rows (sorted) whose identifier begins with the first 8 bytes of an identifier
        ``RPI_j`` of one of the keys and which were heard in ``RPI_j``'s reception window
        (:func:`reception_window`): a screen that passes every row the keys match, and the
        few that share only half an identifier with one of them (the arrays are checked as
        by :func:`match_arrays`)."""
        _check_arguments(tolerance_intervals, DEFAULT_CHUNK_SIZE, 1)
        rows = {
            row
            for packed in _packed_chunks(teks, start_intervals, rolling_periods, _MAX_CHUNK_SIZE)
            for _, row, _ in _match_packed(self, packed, tolerance_intervals, confirm=False)
        }
        return np.array(sorted(rows), dtype=np.int64)

    def lookup(self, buf: bytearray, nbytes: int) -> tuple[list[int], list[int], list[int]]:
        """Seen heads in ``buf[:nbytes]``: (identifier positions, first and end sorted rows).

        Rows ``first .. end-1`` of the sorted sightings share the identifier's head; the
        caller compares their tails.
        """
        low = np.frombuffer(buf, dtype="<u4", count=nbytes // 4)[::4]  # low half of each head
        candidates = np.flatnonzero(np.take(self.table, low & self.mask))
        if not candidates.size:
            return [], [], []
        heads = np.frombuffer(buf, dtype="<u8", count=nbytes // 8)[0::2][candidates]
        second = np.take(self.table_high, (heads >> np.uint64(32)).astype(np.uint32) & self.mask)
        candidates, heads = candidates[second], heads[second]
        first = np.searchsorted(self.head, heads, side="left")
        end = np.searchsorted(self.head, heads, side="right")
        hit = end > first
        return candidates[hit].tolist(), first[hit].tolist(), end[hit].tolist()


@dataclass(frozen=True, slots=True)
class _Packed:
    """A chunk of well-formed keys as flat arrays (what a worker process receives)."""

    teks: bytes
    starts: Int64Array
    periods: Int64Array


# The index of a worker process: handed over by the pool's initializer, which with the
# "fork" start method passes it by inheritance (nothing is pickled).
_WORKER_INDEX: SightingIndex | None = None


def _init_worker(index: SightingIndex) -> None:
    global _WORKER_INDEX
    _WORKER_INDEX = index


def _match_packed(
    index: SightingIndex, packed: _Packed, tolerance: int, *, confirm: bool = True
) -> list[tuple[int, int, int]]:
    """(key position in chunk, sighting row, interval) for every match in one chunk.

    Keys none of whose identifiers' windows (together ``[s − T, s + p + T)``) holds a
    sighting are skipped before derivation; a confirmed identifier's sightings are kept
    by its own window (:func:`reception_window`). ``confirm=False`` leaves out the
    comparison of the identifiers' second halves (:meth:`SightingIndex.candidates`).
    """
    starts, periods = packed.starts, packed.periods
    lo, hi = starts - tolerance, starts + periods + tolerance
    live = np.flatnonzero((hi > index.min_interval) & (lo <= index.max_interval))
    out: list[tuple[int, int, int]] = []
    if not live.size:
        return out
    buf = bytearray(_BLOCK_KEYS * TEK_ROLLING_PERIOD * 16)
    everything = live.size == len(starts)
    for b in range(0, live.size, _BLOCK_KEYS):
        keys = live[b : b + _BLOCK_KEYS]
        if everything:
            teks = packed.teks[16 * b : 16 * (b + keys.size)]
        else:
            teks = b"".join(packed.teks[16 * k : 16 * k + 16] for k in keys.tolist())
        counts = periods[keys]
        nbytes = rpis_into(buf, teks, starts[keys], counts)
        found, firsts, ends = index.lookup(buf, nbytes)
        if not found:
            continue
        offsets = np.concatenate(([0], np.cumsum(counts)))
        owners = np.searchsorted(offsets, found, side="right") - 1
        tails = np.frombuffer(buf, dtype="<u8", count=nbytes // 8)[1::2]
        for pos, owner, first, end in zip(found, owners.tolist(), firsts, ends, strict=True):
            k = int(keys[owner])
            interval = int(starts[k]) + pos - int(offsets[owner])
            j_lo, j_hi = reception_window(interval, tolerance)
            tail = tails[pos] if confirm else None
            for row in range(first, end):
                same = tail is None or index.tail[row] == tail
                if same and j_lo <= index.intervals[row] < j_hi:
                    out.append((k, int(index.sighting_row[row]), interval))
    return out


def _worker_task(packed: _Packed, tolerance: int) -> list[tuple[int, int, int]]:
    assert _WORKER_INDEX is not None
    return _match_packed(_WORKER_INDEX, packed, tolerance)


def _int_array(name: str, values: npt.ArrayLike, n: int) -> Int64Array:
    try:
        array = np.asarray(values)
    except (OverflowError, ValueError):
        raise MatchInputError(f"{name} must be integers") from None
    if array.shape != (n,) or (n and array.dtype.kind not in "iu"):
        raise MatchInputError(f"{name} must be a flat array of {n} integers")
    if array.dtype.kind == "u" and n and array.max() > MAX_INTERVAL:
        raise MatchInputError(f"{name} must be in 0..{MAX_INTERVAL}")
    return array.astype(np.int64)


def _packed_chunks(
    teks: bytes, start_intervals: npt.ArrayLike, rolling_periods: npt.ArrayLike, size: int
) -> Iterator[_Packed]:
    """Arrays of keys, checked whole (MATCH-6), cut into packed chunks of ``size`` keys."""
    if not isinstance(teks, bytes | bytearray) or len(teks) % KEY_LENGTH:
        raise MatchInputError(f"teks must be bytes, {KEY_LENGTH} per key")
    n = len(teks) // KEY_LENGTH
    starts = _int_array("start_intervals", start_intervals, n)
    periods = _int_array("rolling_periods", rolling_periods, n)
    if n:
        if starts.min() < 0 or starts.max() > MAX_INTERVAL:
            raise MatchInputError(f"every start interval must be in 0..{MAX_INTERVAL}")
        if periods.min() < 1 or periods.max() > TEK_ROLLING_PERIOD:
            raise MatchInputError(f"every rolling period must be in 1..{TEK_ROLLING_PERIOD}")
        if (starts + periods - 1).max() > MAX_INTERVAL:
            raise MatchInputError(f"start + period - 1 must be <= {MAX_INTERVAL}")
    data = bytes(teks)
    for b in range(0, n, size):
        e = min(n, b + size)
        yield _Packed(data[KEY_LENGTH * b : KEY_LENGTH * e], starts[b:e], periods[b:e])


_RT_VALUES = frozenset(int(r) for r in ReportType)


def _fast_pack(keys: Sequence[DiagnosisKey]) -> _Packed | None:
    """The packed chunk when every key passes ``DiagnosisKey.check`` (vectorised), else None."""
    if set(map(type, keys)) != {DiagnosisKey}:
        return None
    datas = list(map(attrgetter("key_data"), keys))
    if set(map(type, datas)) != {bytes} or set(map(len, datas)) != {16}:
        return None
    fields = [
        list(map(attrgetter(name), keys))
        for name in ("rolling_start_interval_number", "rolling_period", "transmission_risk_level")
    ]
    if any(not set(map(type, f)) <= {int} for f in fields):
        return None
    try:
        s, p, t = (np.array(f, dtype=np.int64) for f in fields)
    except OverflowError:
        return None
    rts = set(map(attrgetter("report_type"), keys))
    ok = (
        s.min() >= 0
        and p.min() >= 1
        and p.max() <= TEK_ROLLING_PERIOD
        and (s + p - 1).max() <= MAX_INTERVAL
        and t.min() >= 0
        and t.max() <= MAX_TRANSMISSION_RISK_LEVEL
        and all(type(r) in (ReportType, int) and int(r) in _RT_VALUES for r in rts)
    )
    return _Packed(b"".join(datas), s, p) if ok else None


def _non_int_field(key: DiagnosisKey) -> str | None:
    for name in ("rolling_start_interval_number", "rolling_period", "transmission_risk_level"):
        value = getattr(key, name)
        if isinstance(value, bool) or not isinstance(value, int):
            return name
    return None


def _pack(keys: Sequence[DiagnosisKey], base: int) -> tuple[_Packed, list[int], list[RejectedKey]]:
    """Pack well-formed keys; return (packed, their positions in ``keys``, refusals)."""
    fast = _fast_pack(keys) if keys else None
    if fast is not None:
        return fast, list(range(len(keys))), []
    good: list[int] = []
    rejected: list[RejectedKey] = []
    for i, key in enumerate(keys):
        if not isinstance(key, DiagnosisKey):
            reason: str | None = f"not a DiagnosisKey but a {type(key).__name__}"
        elif bad := _non_int_field(key):
            reason = f"{bad} must be an int"
        else:
            try:
                reason = key.check()
            except (TypeError, ValueError) as exc:  # e.g. a field of a foreign type
                reason = f"malformed field ({type(exc).__name__})"
        if reason is None:
            good.append(i)
        else:
            rejected.append(RejectedKey(base + i, reason))
    kept = [keys[i] for i in good]
    packed = _Packed(
        teks=b"".join(k.key_data for k in kept),
        starts=np.array([k.rolling_start_interval_number for k in kept], dtype=np.int64),
        periods=np.array([k.rolling_period for k in kept], dtype=np.int64),
    )
    return packed, good, rejected


def _chunks(keys: Iterable[DiagnosisKey], size: int) -> Iterator[tuple[int, list[DiagnosisKey]]]:
    chunk: list[DiagnosisKey] = []
    base = 0
    for key in keys:
        chunk.append(key)
        if len(chunk) == size:
            yield base, chunk
            base += size
            chunk = []
    if chunk:
        yield base, chunk


def _workers(workers: int | None) -> int:
    if workers is not None:
        return workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _check_arguments(tolerance: int, chunk_size: int, workers: int | None) -> None:
    for name, value, low, high in (
        ("tolerance_intervals", tolerance, 0, 14 * TEK_ROLLING_PERIOD),
        ("chunk_size", chunk_size, 1, _MAX_CHUNK_SIZE),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise MatchInputError(f"{name} must be an int in {low}..{high}, got {value!r}")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise MatchInputError(f"workers must be None or an int >= 1, got {workers!r}")


Raw = tuple[DiagnosisKey, int, int]
Found = list[tuple[int, int, int]]
Tag = TypeVar("Tag")


class _Collector:
    """Packs chunks and gathers raw matches, refusals and the key count."""

    def __init__(self) -> None:
        self.raw: list[Raw] = []
        self.rejected: list[RejectedKey] = []
        self.total = 0

    def pack(self, base: int, chunk: list[DiagnosisKey]) -> tuple[_Packed, list[int]]:
        self.total += len(chunk)
        packed, good, refused = _pack(chunk, base)
        self.rejected += refused
        return packed, good

    def add(self, chunk: list[DiagnosisKey], good: list[int], found: Found) -> None:
        self.raw += [(chunk[good[k]], s, j) for k, s, j in found]


def _run_serial(
    index: SightingIndex, chunks: Iterable[tuple[Tag, _Packed]], tolerance: int
) -> Iterator[tuple[Tag, Found]]:
    for tag, packed in chunks:
        yield tag, _match_packed(index, packed, tolerance)


def _run_pool(
    index: SightingIndex, chunks: Iterable[tuple[Tag, _Packed]], tolerance: int, workers: int
) -> Iterator[tuple[Tag, Found]]:
    """Chunks in forked workers, at most ``2 × workers`` in flight (MATCH-7); each chunk's
    matches in the order of the chunks."""
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(index,)
    ) as pool:
        flight: collections.deque[tuple[Tag, Future[Found]]] = collections.deque()
        for tag, packed in chunks:
            flight.append((tag, pool.submit(_worker_task, packed, tolerance)))
            while len(flight) > 2 * workers:
                tag, fut = flight.popleft()
                yield tag, fut.result()
        while flight:
            tag, fut = flight.popleft()
            yield tag, fut.result()


def _can_fork(index: SightingIndex, workers: int) -> bool:
    return workers > 1 and len(index) > 0 and "fork" in multiprocessing.get_all_start_methods()


Tagged = tuple[list[DiagnosisKey], list[int]]


def _run(
    index: SightingIndex, keys: Iterable[DiagnosisKey], tolerance: int, size: int, workers: int
) -> _Collector:
    """All chunks, in a pool when there are workers and enough keys, else in this process.

    Only a pool is worth a look-ahead: with workers, up to :data:`PARALLEL_MIN_KEYS` keys
    are read ahead to choose; otherwise each chunk is matched as soon as it is read
    (MATCH-7).
    """
    stream = _chunks(keys, size)
    out = _Collector()

    def packed(
        chunks: Iterable[tuple[int, list[DiagnosisKey]]],
    ) -> Iterator[tuple[Tagged, _Packed]]:
        for base, chunk in chunks:
            p, good = out.pack(base, chunk)
            yield (chunk, good), p

    head: list[tuple[int, list[DiagnosisKey]]] = []
    seen = 0
    if _can_fork(index, workers):
        for base, chunk in stream:
            head.append((base, chunk))
            seen += len(chunk)
            if seen >= PARALLEL_MIN_KEYS:
                break
    chunks = packed(itertools.chain(head, stream))
    if seen >= PARALLEL_MIN_KEYS:
        results = _run_pool(index, chunks, tolerance, workers)
    else:
        results = _run_serial(index, chunks, tolerance)
    for (chunk, good), found in results:
        out.add(chunk, good, found)
    return out


def _match_key_arrays(
    index: SightingIndex,
    teks: bytes,
    start_intervals: npt.ArrayLike,
    rolling_periods: npt.ArrayLike,
    tolerance: int,
    chunk_size: int,
    workers: int | None,
) -> Found:
    """(key position, sighting row, interval) of every match of keys held as arrays, in
    chunks of ``chunk_size``, in a pool when there are workers and enough keys."""
    chunks = list(_packed_chunks(teks, start_intervals, rolling_periods, chunk_size))
    n = sum(len(p.starts) for p in chunks)
    tagged = zip(itertools.count(0, chunk_size), chunks, strict=False)
    count = _workers(workers)
    if _can_fork(index, count) and n >= PARALLEL_MIN_KEYS:
        results = _run_pool(index, tagged, tolerance, count)
    else:
        results = _run_serial(index, tagged, tolerance)
    return [(base + k, row, j) for base, part in results for k, row, j in part]


def _match_columns(
    index: SightingIndex,
    keys: DiagnosisKeyColumns,
    tolerance: int,
    chunk_size: int,
    workers: int | None,
) -> _Collector:
    """:func:`_run` for keys held as columns: checked and packed in bulk; only the keys
    refused or matched become :class:`DiagnosisKey` values."""
    out = _Collector()
    out.total = len(keys)
    ok = keys.well_formed()
    good = np.flatnonzero(ok)
    for i in np.flatnonzero(~ok).tolist():
        out.rejected.append(RejectedKey(i, keys[i].check() or "a field is out of range"))
    picked = keys if good.size == len(keys) else keys.take(good)
    found = _match_key_arrays(
        index,
        b"".join(picked.key_data),
        picked.rolling_start_interval_number,
        picked.rolling_period,
        tolerance,
        chunk_size,
        workers,
    )
    made: dict[int, DiagnosisKey] = {}
    for k, row, j in found:
        key = made.get(k)
        if key is None:
            key = made[k] = picked[k]
        out.raw.append((key, row, j))
    return out


def _metadata(key: DiagnosisKey, sighting: Sighting, cache: dict[bytes, bytes]) -> Metadata | None:
    key_aemk = cache.get(key.key_data)
    if key_aemk is None:
        key_aemk = cache[key.key_data] = aemk(key.key_data)
    try:
        return Metadata.from_bytes(decrypt_metadata(key_aemk, sighting.rpi, sighting.aem))
    except InvalidMetadataError:
        return None


def _order(m: Match) -> tuple[object, ...]:
    s, k = m.sighting, m.diagnosis_key
    dsos = k.days_since_onset_of_symptoms
    return (
        s.unix_time,
        s.rpi,
        s.aem,
        s.rssi,
        s.rssi_correction,
        int(s.calibration_confidence),
        k.key_data,
        k.rolling_start_interval_number,
        k.rolling_period,
        int(k.report_type),
        k.transmission_risk_level,
        -999 if dsos is None else dsos,
    )


def match(
    diagnosis_keys: Iterable[DiagnosisKey],
    sightings: Iterable[Sighting] | SightingIndex,
    *,
    tolerance_intervals: int = DEFAULT_TOLERANCE_INTERVALS,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    workers: int | None = None,
) -> MatchResult:
    """Find the sightings of the published ``diagnosis_keys`` (SPEC §8, MATCH-1 … MATCH-8).

    A sighting matches a key when its identifier is one of the key's identifiers
    ``RPI_j`` (``j`` in ``[start, start + period)``) and its reception interval falls in
    ``[j − tolerance, j + tolerance + 1)`` (:func:`reception_window`). Keys are consumed
    as a stream in chunks of ``chunk_size``; ``workers`` processes share large inputs
    (``None``: one per available core; ``1``: this process only). Malformed keys are
    refused one by one and listed in ``MatchResult.rejected``. The matches are sorted by
    sighting time (then by sighting and key fields); the same key given twice yields each
    match once.

    ``sightings`` are :class:`Sighting` values or a :class:`SightingIndex` built before
    (from stored records, say): then only the matched rows become :class:`Sighting`
    values (:meth:`SightingIndex.sighting`). Keys held as
    :class:`~phe_trace.protocol.diagnosis_key.DiagnosisKeyColumns` are checked and
    matched in bulk, and only the matched (or refused) ones become values.
    """
    _check_arguments(tolerance_intervals, chunk_size, workers)
    if isinstance(sightings, SightingIndex):
        index = sightings
    else:
        index = SightingIndex.from_sightings(sightings)
    if isinstance(diagnosis_keys, DiagnosisKeyColumns):
        out = _match_columns(index, diagnosis_keys, tolerance_intervals, chunk_size, workers)
    else:
        out = _run(index, diagnosis_keys, tolerance_intervals, chunk_size, _workers(workers))
    cache: dict[bytes, bytes] = {}
    unique = {(key, s): j for key, s, j in out.raw}
    seen = {s: index.sighting(s) for _, s in unique}
    found = [
        Match(key, seen[s], j, _metadata(key, seen[s], cache)) for (key, s), j in unique.items()
    ]
    found.sort(key=_order)
    return MatchResult(tuple(found), out.total, tuple(out.rejected))


@dataclass(frozen=True, slots=True)
class ArrayMatches:
    """What :func:`match_arrays` found, as three arrays of equal length, one entry per
    match, sorted by key position and then by sighting row: the key's position in the
    input arrays, the sighting's row in the index, and the interval ``j`` of the
    identifier ``RPI_j`` that was seen."""

    key: Int64Array
    sighting: Int64Array
    interval: Int64Array

    def __len__(self) -> int:
        return len(self.key)


def match_arrays(
    teks: bytes,
    start_intervals: npt.ArrayLike,
    rolling_periods: npt.ArrayLike,
    sightings: SightingIndex,
    *,
    tolerance_intervals: int = DEFAULT_TOLERANCE_INTERVALS,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    workers: int | None = None,
) -> ArrayMatches:
    """:func:`match` for a caller that holds its keys as arrays: ``teks`` the ``n``
    16-byte keys back to back, ``start_intervals`` and ``rolling_periods`` ``n``
    integers each (SPEC MATCH-1 … MATCH-3, MATCH-7, MATCH-8).

    The same identifiers, windows, chunks and worker processes as :func:`match`, and no
    Python object per key or per match: the matches come back as arrays
    (:class:`ArrayMatches`), the AEM is not decrypted and no :class:`Sighting` is made.
    The arrays are checked whole: a key outside the ranges of MATCH-6 (start interval,
    period, ``start + period − 1``) refuses the call with :class:`MatchInputError`.
    Each key position is matched on its own, so a key given twice matches twice.
    """
    _check_arguments(tolerance_intervals, chunk_size, workers)
    if not isinstance(sightings, SightingIndex):
        raise MatchInputError(f"sightings must be a SightingIndex, got {type(sightings).__name__}")
    found = _match_key_arrays(
        sightings, teks, start_intervals, rolling_periods, tolerance_intervals, chunk_size, workers
    )
    array = np.array(found, dtype=np.int64).reshape(len(found), 3)
    order = np.lexsort((array[:, 1], array[:, 0]))
    array = array[order]
    return ArrayMatches(
        np.ascontiguousarray(array[:, 0]),
        np.ascontiguousarray(array[:, 1]),
        np.ascontiguousarray(array[:, 2]),
    )
