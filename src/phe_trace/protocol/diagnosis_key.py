"""The diagnosis key: a Temporary Exposure Key as published, shared by every role.

The fields are those of GAEN's ``TemporaryExposureKey`` export record
(``protocol_spec/SPEC.md`` §12) in the protocol's own words. A ``DiagnosisKey`` is a plain
value: it does not validate itself on construction (export files in the wild contain
odd records and a reader must be able to hold them); :meth:`DiagnosisKey.check` says
what is wrong with one, so consumers can refuse malformed keys one by one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol, overload

import numpy as np
import numpy.typing as npt

from phe_trace.crypto import KEY_LENGTH, MAX_INTERVAL, TEK_ROLLING_PERIOD

__all__ = [
    "MAX_DAYS_SINCE_ONSET",
    "MAX_TRANSMISSION_RISK_LEVEL",
    "DiagnosisKey",
    "DiagnosisKeyColumns",
    "ReportType",
]

#: Largest transmission risk level (GAEN publish API: 0..8).
MAX_TRANSMISSION_RISK_LEVEL = 8
#: Largest |days since onset of symptoms| that carries meaning (GAEN: −14..+14).
MAX_DAYS_SINCE_ONSET = 14


class ReportType(IntEnum):
    """GAEN report type of a diagnosis key (export proto ``ReportType``)."""

    UNKNOWN = 0
    CONFIRMED_TEST = 1
    CONFIRMED_CLINICAL_DIAGNOSIS = 2
    SELF_REPORT = 3
    RECURSIVE = 4
    REVOKED = 5


@dataclass(frozen=True, slots=True)
class DiagnosisKey:
    """A published Temporary Exposure Key and what the health authority attached to it.

    ``rolling_start_interval_number`` need not be day-aligned and ``rolling_period`` may
    be below 144: both occur in real exports and are legal.
    """

    key_data: bytes
    rolling_start_interval_number: int
    rolling_period: int = TEK_ROLLING_PERIOD
    transmission_risk_level: int = 0
    report_type: ReportType = ReportType.UNKNOWN
    days_since_onset_of_symptoms: int | None = None

    def check(self) -> str | None:
        """``None`` if the key is well-formed, else a one-line reason naming the field."""
        if not isinstance(self.key_data, bytes) or len(self.key_data) != KEY_LENGTH:
            got = len(self.key_data) if isinstance(self.key_data, bytes) else "non-bytes"
            return f"key_data must be {KEY_LENGTH} bytes, got {got}"
        start, period = self.rolling_start_interval_number, self.rolling_period
        if not 0 <= start <= MAX_INTERVAL:
            return f"rolling_start_interval_number {start} is outside 0..{MAX_INTERVAL}"
        if not 1 <= period <= TEK_ROLLING_PERIOD:
            return f"rolling_period {period} is outside 1..{TEK_ROLLING_PERIOD}"
        if start + period - 1 > MAX_INTERVAL:
            return "rolling_start_interval_number + rolling_period overflows uint32"
        if not 0 <= self.transmission_risk_level <= MAX_TRANSMISSION_RISK_LEVEL:
            return (
                f"transmission_risk_level {self.transmission_risk_level} is outside "
                f"0..{MAX_TRANSMISSION_RISK_LEVEL}"
            )
        if self.report_type not in ReportType.__members__.values():
            return f"report_type {self.report_type} is unknown"
        return None

    @property
    def end_interval_number(self) -> int:
        """The first interval after the key's validity (exclusive end)."""
        return self.rolling_start_interval_number + self.rolling_period


class KeyFields(Protocol):
    """What :meth:`DiagnosisKeyColumns.from_keys` reads of a key: its six fields."""

    @property
    def key_data(self) -> bytes: ...
    @property
    def rolling_start_interval_number(self) -> int: ...
    @property
    def rolling_period(self) -> int: ...
    @property
    def transmission_risk_level(self) -> int: ...
    @property
    def report_type(self) -> int: ...
    @property
    def days_since_onset_of_symptoms(self) -> int | None: ...


class DiagnosisKeyColumns(Sequence[DiagnosisKey]):
    """Diagnosis keys held as columns: a read-only sequence of :class:`DiagnosisKey` values
    that makes a value only for the position asked for.

    A device checks 100,000 published keys a day and matches a few: an export file read
    into columns (:func:`~phe_trace.protocol.export_format.decode_export_bin` with
    ``columns=True``) costs no Python object per key, and the matcher
    (:func:`phe_trace.exposure.match`) reads the columns in bulk and makes values only of
    the keys it matched. ``key_data`` holds each key's bytes as read (of any length, as a
    reader must hold odd records); the integer columns are int64 arrays;
    ``days_since_onset_of_symptoms`` is meaningful where ``onset_given`` is true (None
    elsewhere). Two sequences of keys are equal when they hold equal keys in order, so
    columns compare equal to the tuple of the same keys.
    """

    __slots__ = (
        "days_since_onset_of_symptoms",
        "key_data",
        "onset_given",
        "report_type",
        "rolling_period",
        "rolling_start_interval_number",
        "transmission_risk_level",
    )

    key_data: tuple[bytes, ...]
    rolling_start_interval_number: npt.NDArray[np.int64]
    rolling_period: npt.NDArray[np.int64]
    transmission_risk_level: npt.NDArray[np.int64]
    report_type: npt.NDArray[np.int64]
    days_since_onset_of_symptoms: npt.NDArray[np.int64]
    onset_given: npt.NDArray[np.bool_]

    def __init__(
        self,
        key_data: Sequence[bytes],
        rolling_start_interval_number: npt.ArrayLike,
        rolling_period: npt.ArrayLike,
        transmission_risk_level: npt.ArrayLike,
        report_type: npt.ArrayLike,
        days_since_onset_of_symptoms: npt.ArrayLike,
        onset_given: npt.ArrayLike,
    ) -> None:
        self.key_data = tuple(key_data)
        n = len(self.key_data)

        def column(name: str, values: npt.ArrayLike, dtype: type[Any]) -> npt.NDArray[Any]:
            array = np.array(values, dtype=dtype)
            if array.shape != (n,):
                raise ValueError(f"{name} must hold {n} values, got shape {array.shape}")
            array.setflags(write=False)
            return array

        self.rolling_start_interval_number = column(
            "rolling_start_interval_number", rolling_start_interval_number, np.int64
        )
        self.rolling_period = column("rolling_period", rolling_period, np.int64)
        self.transmission_risk_level = column(
            "transmission_risk_level", transmission_risk_level, np.int64
        )
        self.report_type = column("report_type", report_type, np.int64)
        self.days_since_onset_of_symptoms = column(
            "days_since_onset_of_symptoms", days_since_onset_of_symptoms, np.int64
        )
        self.onset_given = column("onset_given", onset_given, np.bool_)

    @classmethod
    def from_keys(cls, keys: Iterable[KeyFields]) -> DiagnosisKeyColumns:
        """The columns of well-typed keys (integer fields, ``bytes`` key data): diagnosis
        keys, or any records with their fields."""
        held = tuple(keys)
        onsets = [k.days_since_onset_of_symptoms for k in held]
        return cls(
            [k.key_data for k in held],
            [k.rolling_start_interval_number for k in held],
            [k.rolling_period for k in held],
            [k.transmission_risk_level for k in held],
            [int(k.report_type) for k in held],
            [0 if o is None else o for o in onsets],
            [o is not None for o in onsets],
        )

    @classmethod
    def concat(cls, parts: Iterable[DiagnosisKeyColumns]) -> DiagnosisKeyColumns:
        """The keys of ``parts``, one after the other."""
        held = list(parts)
        if len(held) == 1:
            return held[0]

        def joined(name: str) -> npt.NDArray[Any]:
            arrays = [getattr(p, name) for p in held]
            return np.concatenate(arrays) if arrays else np.empty(0)

        return cls(
            tuple(itertools.chain.from_iterable(p.key_data for p in held)),
            *(joined(name) for name in _INT_COLUMNS),
        )

    def __len__(self) -> int:
        return len(self.key_data)

    @overload
    def __getitem__(self, index: int) -> DiagnosisKey: ...

    @overload
    def __getitem__(self, index: slice) -> DiagnosisKeyColumns: ...

    def __getitem__(self, index: int | slice) -> DiagnosisKey | DiagnosisKeyColumns:
        if isinstance(index, slice):
            return self.take(np.arange(len(self))[index])
        n = len(self)
        if not -n <= index < n:
            raise IndexError("diagnosis key index out of range")
        i = index % n
        return DiagnosisKey(
            self.key_data[i],
            int(self.rolling_start_interval_number[i]),
            int(self.rolling_period[i]),
            int(self.transmission_risk_level[i]),
            _report_type(int(self.report_type[i])),
            int(self.days_since_onset_of_symptoms[i]) if self.onset_given[i] else None,
        )

    def __iter__(self) -> Iterator[DiagnosisKey]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"DiagnosisKeyColumns(<{len(self)} keys>)"

    def take(self, rows: npt.ArrayLike) -> DiagnosisKeyColumns:
        """The keys at ``rows`` (positions), in that order."""
        picked = np.asarray(rows, dtype=np.intp)
        data = self.key_data
        return DiagnosisKeyColumns(
            [data[i] for i in picked.tolist()],
            *(getattr(self, name)[picked] for name in _INT_COLUMNS),
        )

    def well_formed(self) -> npt.NDArray[np.bool_]:
        """One flag per key: what :meth:`DiagnosisKey.check` says of it is None."""
        start, period = self.rolling_start_interval_number, self.rolling_period
        risk = self.transmission_risk_level
        sized = np.fromiter(
            (len(d) == KEY_LENGTH for d in self.key_data), dtype=np.bool_, count=len(self)
        )
        ok: npt.NDArray[np.bool_] = (
            sized
            & (start >= 0)
            & (start <= MAX_INTERVAL)
            & (period >= 1)
            & (period <= TEK_ROLLING_PERIOD)
            & (start + period - 1 <= MAX_INTERVAL)
            & (risk >= 0)
            & (risk <= MAX_TRANSMISSION_RISK_LEVEL)
            & np.isin(self.report_type, _REPORT_TYPE_VALUES)
        )
        return ok


_INT_COLUMNS = (
    "rolling_start_interval_number",
    "rolling_period",
    "transmission_risk_level",
    "report_type",
    "days_since_onset_of_symptoms",
    "onset_given",
)
_REPORT_TYPE_VALUES = np.array([int(t) for t in ReportType], dtype=np.int64)
_REPORT_TYPES = {int(t): t for t in ReportType}


def _report_type(value: int) -> ReportType:
    found = _REPORT_TYPES.get(value)
    # A value outside the enum (only from columns built by hand) stays as it is:
    # DiagnosisKey.check names it.
    return found if found is not None else value  # type: ignore[return-value]
