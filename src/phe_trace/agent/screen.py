"""Which stored sightings a check's diagnosis keys can match at all (AGENT-15).

A device holds 14 days of sightings, and a daily check usually brings a few hundred keys
that match none of them. Turning every stored record into a matcher value
(:class:`phe_trace.exposure.Sighting`, checked field by field) costs more than the match,
so the records are screened first: the first 8 bytes of every identifier of every key
(derived with :func:`phe_trace.crypto.batch.rpis_into`) are looked up among the first 8
bytes of the stored identifiers (a table of flags first, then a binary search), vectorised,
and only the records that pass become matcher values.

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

from phe_trace.crypto import RPI_LENGTH, TEK_ROLLING_PERIOD
from phe_trace.crypto.batch import rpis_into
from phe_trace.errors import PheTraceError
from phe_trace.exposure import Sighting
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

    def seen(self, derived: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
        """The values of ``derived`` that are stored heads."""
        candidates = derived[np.take(self.table, (derived & self.mask).astype(np.intp))]
        at = np.minimum(np.searchsorted(self.sorted, candidates), len(self.sorted) - 1)
        seen: npt.NDArray[np.uint64] = candidates[self.sorted[at] == candidates]
        return seen


def _seen_heads(keys: Sequence[DiagnosisKey], heads: _Heads) -> npt.NDArray[np.uint64] | None:
    """The stored heads that begin an identifier of one of ``keys`` (``None``: the
    derivation refused a key)."""
    buf = bytearray(_BLOCK_KEYS * TEK_ROLLING_PERIOD * RPI_LENGTH)
    found = []
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
        found.append(heads.seen(np.frombuffer(buf, dtype="<u8", count=nbytes // 8)[0::2]))
    return np.concatenate(found) if found else np.zeros(0, dtype=np.uint64)


def _passing(plain: bytes, keys: Sequence[DiagnosisKey]) -> BoolArray:
    """Which records of ``plain`` pass the screen (all of them when it cannot run)."""
    heads = _heads(plain)
    if len(keys) > SCREEN_MAX_KEYS or not len(heads):
        return np.ones(len(heads), dtype=np.bool_)
    seen = _seen_heads(keys, _Heads(heads))
    if seen is None:
        return np.ones(len(heads), dtype=np.bool_)
    return np.isin(heads, seen)


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
