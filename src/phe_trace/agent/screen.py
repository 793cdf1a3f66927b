"""The stored sightings as the matcher's index, and the screen in front of it (AGENT-15).

A device holds 14 days of sightings, and a check usually brings keys that match none of
them. Turning every stored record into a matcher value
(:class:`phe_trace.exposure.Sighting`, checked field by field) would cost more than the
match, so the records are never turned into values in bulk: :func:`sighting_index` builds
the matcher's :class:`phe_trace.exposure.SightingIndex` straight from the concatenated
record bytes (identifier and first-heard time read as numpy columns), and
:func:`phe_trace.exposure.match` turns only the records it matched into values, with RSSI
= the scan window's mean. The screen is that index's lookup: each identifier of each key
is derived once per check (:func:`phe_trace.crypto.batch.rpis_into`), looked up, and kept
only inside its own reception window (:func:`phe_trace.exposure.reception_window`,
MATCH-3).

:func:`candidate_sightings` gives, as values, the records the screen lets through on the
first 8 bytes of an identifier alone (:meth:`phe_trace.exposure.SightingIndex.candidates`):
a superset of what can match. A key the derivation refuses (a malformed one, which the
matcher refuses too, MATCH-6) turns that screen off, and so does a check of more than
:data:`SCREEN_MAX_KEYS` keys: every stored record is then returned.
"""

from __future__ import annotations

from collections.abc import Sequence

from phe_trace.crypto import RPI_LENGTH
from phe_trace.errors import PheTraceError
from phe_trace.exposure import Sighting, SightingIndex
from phe_trace.protocol.diagnosis_key import DiagnosisKey

from .records import iter_sighting_fields, sighting_record_size

__all__ = ["SCREEN_MAX_KEYS", "candidate_sightings", "sighting_index"]

#: Checks with more keys than this are not screened by :func:`candidate_sightings`.
SCREEN_MAX_KEYS = 32_768
#: Where a record holds its identifier and its first-heard time (``<16s4sd…``).
_RPI_OFFSET = 0
_TIME_OFFSET = RPI_LENGTH + 4


def sighting_index(plain: bytes, rssi_correction_db: int) -> SightingIndex:
    """The matcher's index of the records of ``plain`` (concatenated stored records): row
    ``i`` is record ``i``, made a :class:`Sighting` with RSSI = the window's mean only when
    it matches (AGENT-15)."""
    size = sighting_record_size()

    def sighting(row: int) -> Sighting:  # a row of the index: always a whole record
        fields = iter_sighting_fields(plain[row * size : (row + 1) * size])
        rpi, aem, t, _, _, rssi_mean, _ = next(fields)
        return Sighting(rpi, aem, rssi_mean, t, rssi_correction_db)

    return SightingIndex.from_records(
        plain,
        record_size=size,
        rpi_offset=_RPI_OFFSET,
        time_offset=_TIME_OFFSET,
        sighting=sighting,
    )


def candidate_sightings(
    plain: bytes, keys: Sequence[DiagnosisKey], rssi_correction_db: int
) -> list[Sighting]:
    """The records of ``plain`` that ``keys`` may match, as matcher values with RSSI = the
    scan window's mean (see the module docstring)."""
    index = sighting_index(plain, rssi_correction_db)
    rows: Sequence[int] = range(len(index))
    if len(keys) <= SCREEN_MAX_KEYS and len(index):
        try:
            rows = index.candidates(
                b"".join(k.key_data for k in keys),
                [k.rolling_start_interval_number for k in keys],
                [k.rolling_period for k in keys],
            ).tolist()
        except (PheTraceError, TypeError, ValueError, OverflowError):
            pass
    return [index.sighting(row) for row in rows]
