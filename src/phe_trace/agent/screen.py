"""Which stored sightings a check's diagnosis keys can match at all (AGENT-15).

A device holds 14 days of sightings, and a daily check usually brings a few hundred keys
that match none of them. Turning every stored record into a matcher value
(:class:`phe_trace.exposure.Sighting`, checked field by field) costs more than the match,
so the records are screened first: the first 8 bytes of every identifier of every key
(derived with :func:`phe_trace.crypto.batch.rpis_into`) are looked up among the first 8
bytes of the stored identifiers (a table of flags first, then a binary search), vectorised;
a record whose head is found passes only if it was heard inside the reception window of
one of the identifiers with that head (:func:`phe_trace.exposure.reception_window`,
MATCH-3), and only the records that pass become matcher values.

The screen passes a superset of what can match — :func:`phe_trace.exposure.match` still
compares all 16 bytes and the time window — so the matches are exactly the matcher's on
all stored sightings. A key the derivation refuses (a malformed one, which the matcher
refuses too, MATCH-6) turns the screen off for the check, and so does a check of more
than :data:`SCREEN_MAX_KEYS` keys (the matcher's own streaming, parallel path takes
those): every stored record is then handed to the matcher.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from phe_trace.crypto import INTERVAL_SECONDS, RPI_LENGTH, TEK_ROLLING_PERIOD
from phe_trace.crypto.batch import rpis_into
from phe_trace.errors import PheTraceError
from phe_trace.exposure import DEFAULT_TOLERANCE_INTERVALS, Sighting, reception_window
from phe_trace.protocol.diagnosis_key import DiagnosisKey

from .records import iter_sighting_fields, sighting_record_size

__all__ = ["SCREEN_MAX_KEYS", "candidate_sightings"]

#: Checks with more keys than this are not screened (the matcher streams them in chunks).
SCREEN_MAX_KEYS = 32_768
#: Keys whose identifiers are derived at once (2.4 MB of identifiers).
_BLOCK_KEYS = 1024
#: The flag table: between 2^16 and 2^22 flags, about 64 per stored record.
_MIN_TABLE_BITS = 16
_MAX_TABLE_BITS = 22
_TABLE_SPARSITY = 64

BoolArray = npt.NDArray[np.bool_]


def _heads(plain: bytes) -> npt.NDArray[np.uint64]:
    """The first 8 bytes of each record's identifier, as little-endian integers."""
    size = sighting_record_size()
    n = len(plain) // size
    return np.ndarray((n,), dtype="<u8", buffer=plain, offset=0, strides=(size,))


def _intervals(plain: bytes) -> npt.NDArray[np.int64]:
    """The reception interval of each record (``floor(first heard / 600)``)."""
    size = sighting_record_size()
    n = len(plain) // size
    times = np.ndarray((n,), dtype="<f8", buffer=plain, offset=RPI_LENGTH + 4, strides=(size,))
    return (times // INTERVAL_SECONDS).astype(np.int64)


class _Heads:
    """The stored heads, sorted, behind a table of one-byte flags addressed by their low
    bits (at most 4 MiB, about 64 flags per head): most derived identifiers are turned
    away by one table lookup, and only the few that pass are searched for."""

    def __init__(self, heads: npt.NDArray[np.uint64]) -> None:
        self.sorted = np.sort(heads)
        bits = _MIN_TABLE_BITS
        while (1 << bits) < _TABLE_SPARSITY * len(heads) and bits < _MAX_TABLE_BITS:
            bits += 1
        self.mask = np.uint64((1 << bits) - 1)
        self.table = np.zeros(1 << bits, dtype=np.bool_)
        self.table[(heads & self.mask).astype(np.intp)] = True

    def seen(self, derived: npt.NDArray[np.uint64]) -> npt.NDArray[np.intp]:
        """The positions in ``derived`` of values that are stored heads."""
        candidates = np.flatnonzero(np.take(self.table, (derived & self.mask).astype(np.intp)))
        values = derived[candidates]
        at = np.minimum(np.searchsorted(self.sorted, values), len(self.sorted) - 1)
        seen: npt.NDArray[np.intp] = candidates[self.sorted[at] == values]
        return seen


def _block_intervals(block: Sequence[DiagnosisKey], positions: npt.NDArray[np.intp]) -> list[int]:
    """The interval of each derived identifier at ``positions`` of a block's buffer."""
    periods = np.array([k.rolling_period for k in block], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(periods)))
    owners = np.searchsorted(offsets, positions, side="right") - 1
    return [
        block[o].rolling_start_interval_number + int(p) - int(offsets[o])
        for o, p in zip(owners.tolist(), positions.tolist(), strict=True)
    ]


def _seen_heads(keys: Sequence[DiagnosisKey], heads: _Heads) -> dict[int, list[int]] | None:
    """Stored heads that begin an identifier of one of ``keys``, each with the intervals of
    those identifiers (``None``: the derivation refused a key)."""
    buf = bytearray(_BLOCK_KEYS * TEK_ROLLING_PERIOD * RPI_LENGTH)
    found: dict[int, list[int]] = {}
    for b in range(0, len(keys), _BLOCK_KEYS):
        block = keys[b : b + _BLOCK_KEYS]
        try:
            nbytes = rpis_into(
                buf,
                b"".join(k.key_data for k in block),
                [k.rolling_start_interval_number for k in block],
                [k.rolling_period for k in block],
            )
        except (PheTraceError, TypeError, ValueError, OverflowError):
            return None
        derived = np.frombuffer(buf, dtype="<u8", count=nbytes // 8)[0::2]
        positions = heads.seen(derived)
        intervals = _block_intervals(block, positions)
        for head, j in zip(derived[positions].tolist(), intervals, strict=True):
            found.setdefault(head, []).append(j)
    return found


def _in_window(interval: int, identifiers: list[int]) -> bool:
    """Whether a record heard during ``interval`` is in the reception window of one of
    ``identifiers`` (their intervals), MATCH-3."""
    for j in identifiers:
        lo, hi = reception_window(j, DEFAULT_TOLERANCE_INTERVALS)
        if lo <= interval < hi:
            return True
    return False


def _passing(plain: bytes, keys: Sequence[DiagnosisKey]) -> BoolArray:
    """Which records of ``plain`` pass the screen (all of them when it cannot run)."""
    heads = _heads(plain)
    if len(keys) > SCREEN_MAX_KEYS or not len(heads):
        return np.ones(len(heads), dtype=np.bool_)
    seen = _seen_heads(keys, _Heads(heads))
    if seen is None:
        return np.ones(len(heads), dtype=np.bool_)
    passing = np.isin(heads, np.fromiter(seen, dtype=np.uint64, count=len(seen)))
    rows = np.flatnonzero(passing)
    intervals = _intervals(plain)[rows].tolist()
    for row, head, interval in zip(rows.tolist(), heads[rows].tolist(), intervals, strict=True):
        passing[row] = _in_window(interval, seen[head])
    return passing


def candidate_sightings(
    plain: bytes, keys: Sequence[DiagnosisKey], rssi_correction_db: int
) -> list[Sighting]:
    """The records of ``plain`` (concatenated stored records) that ``keys`` may match, as
    matcher values with RSSI = the scan window's mean (AGENT-15)."""
    size = sighting_record_size()
    out = []
    for i in np.flatnonzero(_passing(plain, keys)).tolist():
        for rpi, aem, t, _, _, rssi_mean, _ in iter_sighting_fields(
            plain[i * size : (i + 1) * size]
        ):
            out.append(Sighting(rpi, aem, rssi_mean, t, rssi_correction_db))
    return out
