"""The matcher: which published diagnosis keys did this device see, and when.

``protocol_spec/SPEC.md`` §8 (MATCH-1 … MATCH-8). Design, top-down:

1. The sightings are indexed once (:class:`_SightingIndex`): sorted by identifier (read
   as two uint64 words), plus two flag tables addressed by low bits of each half of the
   first word — a prefilter passing about 1 in 4,000 unseen identifiers (each table at
   most 4 MiB, so it stays in cache); candidates are confirmed by binary search on the
   first word and a comparison of the second.
2. Keys stream in chunks. A chunk is packed into flat arrays (the 16-byte keys back to
   back, start and period as integer arrays) after a vectorised well-formedness check;
   malformed keys are refused one by one (MATCH-6).
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
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from operator import attrgetter

import numpy as np
import numpy.typing as npt

from phe_trace.crypto import (
    INTERVAL_SECONDS,
    MAX_INTERVAL,
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
    ReportType,
)

from .errors import MatchInputError
from .model import Match, MatchResult, RejectedKey, Sighting

__all__ = ["DEFAULT_TOLERANCE_INTERVALS", "match", "reception_window"]

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


def reception_window(
    interval: int, tolerance: int = DEFAULT_TOLERANCE_INTERVALS
) -> tuple[int, int]:
    """The reception intervals ``[lo, hi)`` in which a sighting of ``RPI_interval`` matches.

    ``[j − T, j + T + 1)``: from ``T`` intervals before the identifier's own interval to
    ``T`` intervals after it, whatever the key's period, not capped at the key's end
    (SPEC MATCH-3). A key's identifiers together match in ``[s − T, s + p + T)``.
    """
    return interval - tolerance, interval + tolerance + 1


class _SightingIndex:
    """The sightings, indexed once for identifier lookup (MATCH-2, MATCH-7).

    Identifiers are read as two little-endian uint64 words (``head``, ``tail``). The
    sightings are sorted by (head, tail); ``table`` has one flag per value of the low
    bits of the head's low half (at most 4 MiB, so lookups stay in cache), ``table_high``
    the same for the head's high half: only candidates passing both (about 1 in 4,000
    unseen identifiers) reach the binary search.
    """

    def __init__(self, sightings: Sequence[Sighting]) -> None:
        n = len(sightings)
        words = np.frombuffer(b"".join(s.rpi for s in sightings), dtype="<u8").reshape(n, 2)
        times = np.array([s.unix_time for s in sightings], dtype=np.float64)
        intervals = (times // INTERVAL_SECONDS).astype(np.int64)
        order = np.lexsort((words[:, 1], words[:, 0]))
        self.head = np.ascontiguousarray(words[order, 0])
        self.tail = np.ascontiguousarray(words[order, 1])
        self.sighting = order
        self.intervals = intervals[order]
        self.min_interval = int(intervals.min()) if n else 0
        self.max_interval = int(intervals.max()) if n else -1
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

    def __len__(self) -> int:
        return len(self.head)

    def lookup(self, buf: bytearray, nbytes: int) -> tuple[list[int], list[int], list[int]]:
        """Seen identifiers in ``buf[:nbytes]``: (their positions, first and end sorted rows).

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
_WORKER_INDEX: _SightingIndex | None = None


def _init_worker(index: _SightingIndex) -> None:
    global _WORKER_INDEX
    _WORKER_INDEX = index


def _match_packed(
    index: _SightingIndex, packed: _Packed, tolerance: int
) -> list[tuple[int, int, int]]:
    """(key position in chunk, sighting index, interval) for every match in one chunk.

    Keys none of whose identifiers' windows (together ``[s − T, s + p + T)``) holds a
    sighting are skipped before derivation; a confirmed identifier's sightings are kept
    by its own window (:func:`reception_window`).
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
            tail = tails[pos]
            for row in range(first, end):
                if index.tail[row] == tail and j_lo <= index.intervals[row] < j_hi:
                    out.append((k, int(index.sighting[row]), interval))
    return out


def _worker_task(packed: _Packed, tolerance: int) -> list[tuple[int, int, int]]:
    assert _WORKER_INDEX is not None
    return _match_packed(_WORKER_INDEX, packed, tolerance)


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
Chunks = Iterable[tuple[int, list[DiagnosisKey]]]
Found = list[tuple[int, int, int]]


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


def _run_serial(index: _SightingIndex, chunks: Chunks, tolerance: int, out: _Collector) -> None:
    for base, chunk in chunks:
        packed, good = out.pack(base, chunk)
        out.add(chunk, good, _match_packed(index, packed, tolerance))


def _run_pool(
    index: _SightingIndex, chunks: Chunks, tolerance: int, workers: int, out: _Collector
) -> None:
    """Chunks in forked workers, at most ``2 × workers`` in flight (MATCH-7)."""
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(index,)
    ) as pool:
        flight: collections.deque[tuple[list[DiagnosisKey], list[int], Future[Found]]]
        flight = collections.deque()
        for base, chunk in chunks:
            packed, good = out.pack(base, chunk)
            flight.append((chunk, good, pool.submit(_worker_task, packed, tolerance)))
            while len(flight) > 2 * workers:
                c, g, fut = flight.popleft()
                out.add(c, g, fut.result())
        while flight:
            c, g, fut = flight.popleft()
            out.add(c, g, fut.result())


def _run(
    index: _SightingIndex, keys: Iterable[DiagnosisKey], tolerance: int, size: int, workers: int
) -> _Collector:
    """All chunks, in a pool when there are workers and enough keys, else in this process.

    Only a pool is worth a look-ahead: with workers, up to :data:`PARALLEL_MIN_KEYS` keys
    are read ahead to choose; otherwise each chunk is matched as soon as it is read
    (MATCH-7).
    """
    stream = _chunks(keys, size)
    out = _Collector()
    if workers <= 1 or len(index) == 0 or "fork" not in multiprocessing.get_all_start_methods():
        _run_serial(index, stream, tolerance, out)
        return out
    head: list[tuple[int, list[DiagnosisKey]]] = []
    seen = 0
    for base, chunk in stream:
        head.append((base, chunk))
        seen += len(chunk)
        if seen >= PARALLEL_MIN_KEYS:
            break
    chunks = itertools.chain(head, stream)
    if seen >= PARALLEL_MIN_KEYS:
        _run_pool(index, chunks, tolerance, workers, out)
    else:
        _run_serial(index, chunks, tolerance, out)
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
    sightings: Iterable[Sighting],
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
    """
    _check_arguments(tolerance_intervals, chunk_size, workers)
    seen = tuple(sightings)
    for s in seen:
        if not isinstance(s, Sighting):
            raise MatchInputError(f"sightings must be Sighting values, got {type(s).__name__}")
    index = _SightingIndex(seen)
    out = _run(index, diagnosis_keys, tolerance_intervals, chunk_size, _workers(workers))
    cache: dict[bytes, bytes] = {}
    unique = {(key, s): j for key, s, j in out.raw}
    found = [
        Match(key, seen[s], j, _metadata(key, seen[s], cache)) for (key, s), j in unique.items()
    ]
    found.sort(key=_order)
    return MatchResult(tuple(found), out.total, tuple(out.rejected))
