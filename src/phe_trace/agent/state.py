"""The agent's state records: what the store keeps besides keys and sightings, typed.

Each state record is a dataclass, a subclass of :class:`StateRecord`, named by ``NAME``
(the store's ``meta`` row, sealed under ``meta/<NAME>``) and kept as named JSON with its
``version``. :meth:`AgentStore.load <phe_trace.agent.store.AgentStore.load>` reads a
record whatever version it was written in — each version's migration (``MIGRATIONS``)
turns it into the next, up to the current one — and :meth:`AgentStore.save
<phe_trace.agent.store.AgentStore.save>` writes the current version. A record holds
nothing until its first save: the empty record (``Kind()``) is what a missing, empty or
unreadable one reads as.

Version 0 is the form before records carried a version: the same names, except that a
kept match and an open key were positional lists (``{"k": [key, start, period, …],
"s": [rpi, aem, rssi, time, …], "j": …, "m": …}``), processed export files could be a bare
list of names and warnings bare strings (read as undated: the readers and the retention
purge date them ``now``, :mod:`.retention`).

Records that are one item dated by one time (:class:`StepState`, :class:`CheckRecord`,
:class:`Notified`, :class:`ReportState`) are stored as ``{}`` while empty: the purge
empties them whole (:mod:`.retention`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Self

from .config import FollowedRegion
from .errors import StoreError

__all__ = [
    "RECORDS",
    "AnalyticsReport",
    "AnalyticsState",
    "CheckRecord",
    "KeptMatch",
    "KeyRecord",
    "Matches",
    "Notified",
    "Outbox",
    "Regions",
    "ReportState",
    "SealedBox",
    "SeenSighting",
    "StateRecord",
    "StepState",
    "SyncState",
    "WarningItem",
    "Warnings",
    "thawed",
]

Json = dict[str, Any]


def _same(value: Json) -> Json:
    """A migration that changes nothing but the version (the names were already these)."""
    return value


def thawed(value: Any) -> Any:
    """A copy of ``value`` that shares nothing mutable with it: lists, dicts and mutable
    dataclasses are copied, all the way down; frozen dataclasses and scalars are shared."""
    if isinstance(value, list):
        kinds = set(map(type, value))
        if len(kinds) == 1 and _frozen(kinds.pop()):  # e.g. the open keys: shared
            return list(value)
        return [thawed(v) for v in value]
    if isinstance(value, dict):
        return {k: thawed(v) for k, v in value.items()}
    if _frozen(type(value)) or not hasattr(type(value), "__dataclass_params__"):
        return value
    return type(value)(**{f.name: thawed(getattr(value, f.name)) for f in fields(value)})


def _frozen(kind: type) -> bool:
    params = getattr(kind, "__dataclass_params__", None)
    return params is not None and bool(params.frozen)


class StateRecord:
    """One kind of state record: its name, current version and migrations."""

    NAME: ClassVar[str]
    #: The version this code writes.
    VERSION: ClassVar[int] = 1
    #: ``n`` → the function turning a record of version ``n`` into one of version ``n + 1``.
    MIGRATIONS: ClassVar[dict[int, Callable[[Json], Json]]] = {0: _same}
    #: Stored as ``{}`` while it holds nothing (a record of one dated item).
    WHOLE: ClassVar[bool] = False

    @classmethod
    def from_json(cls, value: Json) -> Self:
        """The record stored as ``value``, of any version up to :attr:`VERSION`."""
        if not value:
            return cls()
        version = value.get("version", 0)
        if not isinstance(version, int) or version > cls.VERSION or version < 0:
            raise StoreError(f"state record {cls.NAME!r} has an unknown version {version!r}")
        while version < cls.VERSION:
            value = cls.MIGRATIONS[version](dict(value))
            version += 1
        try:
            return cls.decode(value)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"state record {cls.NAME!r} is malformed ({exc!r})") from None

    def to_json(self) -> Json:
        """The record as stored: named JSON with its version (``{}`` for an empty whole
        record)."""
        if self.WHOLE and self == type(self)():
            return {}
        return {"version": self.VERSION, **self.encode()}

    @classmethod
    def decode(cls, value: Json) -> Self:
        """The record from its current version's JSON (plain fields by name)."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in value.items() if k in names})

    def encode(self) -> Json:
        """The fields as JSON (plain fields by name)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


# -- keys and matches ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A diagnosis key as kept with a match or as an open key."""

    key_data: bytes
    rolling_start_interval_number: int
    rolling_period: int
    transmission_risk_level: int
    report_type: int
    days_since_onset_of_symptoms: int | None

    @property
    def valid_until(self) -> float:
        """When the key stopped being valid: the end of its last interval, unix seconds."""
        return float((self.rolling_start_interval_number + self.rolling_period) * 600)

    def to_json(self) -> Json:
        return {
            "key_data": self.key_data.hex(),
            "rolling_start_interval_number": self.rolling_start_interval_number,
            "rolling_period": self.rolling_period,
            "transmission_risk_level": self.transmission_risk_level,
            "report_type": self.report_type,
            "days_since_onset_of_symptoms": self.days_since_onset_of_symptoms,
        }

    @classmethod
    def from_json(cls, d: Json) -> KeyRecord:
        return cls(
            bytes.fromhex(d["key_data"]),
            int(d["rolling_start_interval_number"]),
            int(d["rolling_period"]),
            int(d["transmission_risk_level"]),
            int(d["report_type"]),
            d["days_since_onset_of_symptoms"],
        )


def _key_v0(d: list[Any]) -> Json:
    """A version-0 (positional) key: ``[key hex, start, period, trl, report type, dsos]``."""
    kd, start, period, trl, rt, dsos = d
    return {
        "key_data": kd,
        "rolling_start_interval_number": start,
        "rolling_period": period,
        "transmission_risk_level": trl,
        "report_type": rt,
        "days_since_onset_of_symptoms": dsos,
    }


@dataclass(frozen=True, slots=True)
class SeenSighting:
    """The sighting a kept match is of, as the matcher saw it."""

    rpi: bytes
    aem: bytes
    rssi: int
    unix_time: float
    rssi_correction: int
    calibration_confidence: int

    def to_json(self) -> Json:
        return {
            "rpi": self.rpi.hex(),
            "aem": self.aem.hex(),
            "rssi": self.rssi,
            "unix_time": self.unix_time,
            "rssi_correction": self.rssi_correction,
            "calibration_confidence": self.calibration_confidence,
        }

    @classmethod
    def from_json(cls, d: Json) -> SeenSighting:
        return cls(
            bytes.fromhex(d["rpi"]),
            bytes.fromhex(d["aem"]),
            d["rssi"],
            d["unix_time"],
            d["rssi_correction"],
            int(d["calibration_confidence"]),
        )


@dataclass(frozen=True, slots=True)
class KeptMatch:
    """One kept match: the diagnosis key, the sighting, the interval, the metadata."""

    key: KeyRecord
    sighting: SeenSighting
    interval: int
    metadata: bytes | None

    def to_json(self) -> Json:
        return {
            "key": self.key.to_json(),
            "sighting": self.sighting.to_json(),
            "interval": self.interval,
            "metadata": self.metadata.hex() if self.metadata is not None else None,
        }

    @classmethod
    def from_json(cls, d: Json) -> KeptMatch:
        meta = d["metadata"]
        return cls(
            KeyRecord.from_json(d["key"]),
            SeenSighting.from_json(d["sighting"]),
            int(d["interval"]),
            bytes.fromhex(meta) if meta is not None else None,
        )


def _match_v0(d: Json) -> Json:
    """A version-0 kept match: ``{"k": key list, "s": [rpi, aem, rssi, time, correction,
    confidence], "j": interval, "m": metadata hex}``."""
    rpi, aem, rssi, t, corr, conf = d["s"]
    return {
        "key": _key_v0(d["k"]),
        "sighting": {
            "rpi": rpi,
            "aem": aem,
            "rssi": rssi,
            "unix_time": t,
            "rssi_correction": corr,
            "calibration_confidence": conf,
        },
        "interval": d["j"],
        "metadata": d["m"],
    }


@dataclass(slots=True)
class Matches(StateRecord):
    """The kept matches (AGENT-15), dated by their sighting's time."""

    NAME: ClassVar[str] = "matches"
    MIGRATIONS: ClassVar[dict[int, Callable[[Json], Json]]] = {
        0: lambda v: {**v, "items": [_match_v0(d) for d in v.get("items", [])]}
    }

    items: list[KeptMatch] = field(default_factory=list)

    @classmethod
    def decode(cls, value: Json) -> Matches:
        return cls([KeptMatch.from_json(d) for d in value.get("items", [])])

    def encode(self) -> Json:
        return {"items": [m.to_json() for m in self.items]}


# -- the sync state -----------------------------------------------------------------------

#: Processed export files: path → the time the file is dated by (None: not dated yet, an
#: entry of the old bare-list form; read as dated ``now``).
Processed = dict[str, float | None]


def _processed_v0(listing: list[Any] | Json) -> Json:
    if isinstance(listing, list):
        return dict.fromkeys((str(p) for p in listing), None)
    return {str(p): None if t is None else float(t) for p, t in listing.items()}


def _sync_v0(v: Json) -> Json:
    out = dict(v)
    out["processed"] = _processed_v0(v.get("processed", {}))
    out["regions"] = {n: _processed_v0(files) for n, files in v.get("regions", {}).items()}
    out["open_keys"] = [_key_v0(k) for k in v.get("open_keys", [])]
    return out


#: The fields of a key, in the order of :class:`KeyRecord`'s constructor.
_KEY_FIELDS = (
    "key_data",
    "rolling_start_interval_number",
    "rolling_period",
    "transmission_risk_level",
    "report_type",
    "days_since_onset_of_symptoms",
)


def _key_columns(keys: list[KeyRecord]) -> Json:
    """Keys as named columns: ``key_data`` the keys' bytes back to back in hex, each other
    field a list with one value per key."""
    columns: Json = {"key_data": b"".join(k.key_data for k in keys).hex()}
    for name in _KEY_FIELDS[1:]:
        columns[name] = [getattr(k, name) for k in keys]
    return columns


_MALFORMED = "state record 'sync' is malformed: "


def _keys_of_columns(columns: Json) -> list[KeyRecord]:
    """The keys of :func:`_key_columns`' columns; columns that make no whole keys are a
    malformed record."""
    data = bytes.fromhex(columns["key_data"])
    values = [columns[name] for name in _KEY_FIELDS[1:]]
    n = len(data) // 16
    if len(data) != 16 * n or any(len(v) != n for v in values):
        raise StoreError(_MALFORMED + "open key columns of unequal length")
    for column in values[:-1]:
        if not all(type(v) is int for v in column):
            raise StoreError(_MALFORMED + "an open key's number is no integer")
    if not all(v is None or type(v) is int for v in values[-1]):
        raise StoreError(_MALFORMED + "an open key's days since onset is no integer")
    return [
        KeyRecord(data[16 * i : 16 * i + 16], *row)
        for i, row in enumerate(zip(*values, strict=True))
    ]


def _sync_v1(v: Json) -> Json:
    """Version 1 kept each open key as an object of named fields; version 2 as columns."""
    out = dict(v)
    out["open_keys"] = _key_columns([KeyRecord.from_json(k) for k in v.get("open_keys", [])])
    return out


@dataclass(slots=True)
class SyncState(StateRecord):
    """Home's processed export files, each followed region's, and the keys still open.

    The open keys are stored as named columns (:func:`_key_columns`): a check carries
    thousands of them, and an object per key made the record several times larger and
    slower to write (version 2; version 1 stored an object per key)."""

    NAME: ClassVar[str] = "sync"
    VERSION: ClassVar[int] = 2
    MIGRATIONS: ClassVar[dict[int, Callable[[Json], Json]]] = {0: _sync_v0, 1: _sync_v1}

    processed: Processed = field(default_factory=dict)
    regions: dict[str, Processed] = field(default_factory=dict)
    open_keys: list[KeyRecord] = field(default_factory=list)

    @classmethod
    def decode(cls, value: Json) -> SyncState:
        return cls(
            dict(value.get("processed", {})),
            {n: dict(files) for n, files in value.get("regions", {}).items()},
            _keys_of_columns(value["open_keys"]) if "open_keys" in value else [],
        )

    def encode(self) -> Json:
        return {
            "processed": dict(self.processed),
            "regions": {n: dict(files) for n, files in self.regions.items()},
            "open_keys": _key_columns(self.open_keys),
        }


# -- small records ------------------------------------------------------------------------


@dataclass(slots=True)
class StepState(StateRecord):
    """The last time the agent stepped to (AGENT-11: a clock set back is noticed)."""

    NAME: ClassVar[str] = "state"
    WHOLE: ClassVar[bool] = True

    last_now: float | None = None


@dataclass(slots=True)
class CheckRecord(StateRecord):
    """One check's summary: the ``last_check`` record, and each row of the risk history."""

    NAME: ClassVar[str] = "last_check"
    WHOLE: ClassVar[bool] = True

    at: float | None = None
    files_checked: int = 0
    files_skipped: int = 0
    keys_checked: int = 0
    matched_sightings: int = 0
    new_windows: int = 0
    risk_level: str = "low"
    last_exposure_day: str | None = None
    rejected_files: dict[str, str] = field(default_factory=dict)
    interrupted: str | None = None
    nothing_published: bool = False
    regions: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None


@dataclass(slots=True)
class Notified(StateRecord):
    """The highest risk level the person was notified of, and when."""

    NAME: ClassVar[str] = "notified"
    WHOLE: ClassVar[bool] = True

    level: str | None = None
    at: float | None = None


@dataclass(slots=True)
class ReportState(StateRecord):
    """The last report: when, its revision token, test type and the keys sent."""

    NAME: ClassVar[str] = "report"
    WHOLE: ClassVar[bool] = True

    published_at: float | None = None
    revision_token: str | None = None
    test_type: str | None = None
    keys_sent: int | None = None


@dataclass(frozen=True, slots=True)
class WarningItem:
    """A warning shown by ``status``; ``at`` None for one of the old undated form."""

    at: float | None
    message: str


@dataclass(slots=True)
class Warnings(StateRecord):
    """The last warnings, dated (``status`` shows the latest)."""

    NAME: ClassVar[str] = "warnings"

    items: list[WarningItem] = field(default_factory=list)

    @classmethod
    def decode(cls, value: Json) -> Warnings:
        return cls(
            [
                WarningItem(w.get("at"), str(w["message"]))
                if isinstance(w, dict)
                else WarningItem(None, str(w))
                for w in value.get("items", [])
            ]
        )

    def encode(self) -> Json:
        return {"items": [{"at": w.at, "message": w.message} for w in self.items]}

    def dated(self, now: float) -> list[WarningItem]:
        """The warnings, an undated one dated ``now``."""
        return [w if w.at is not None else WarningItem(float(now), w.message) for w in self.items]


@dataclass(slots=True)
class Regions(StateRecord):
    """The regions followed besides home, added with ``region add``."""

    NAME: ClassVar[str] = "regions"

    items: list[FollowedRegion] = field(default_factory=list)

    @classmethod
    def decode(cls, value: Json) -> Regions:
        return cls([FollowedRegion(**item) for item in value.get("items", [])])

    def encode(self) -> Json:
        return {"items": [r.model_dump(mode="json") for r in self.items]}


# -- the statistics -----------------------------------------------------------------------


@dataclass(slots=True)
class AnalyticsReport:
    """One prepared report: its day, metric, value, ε, due time and when it was sent."""

    day: int
    metric: str
    value: int
    epsilon: float
    due: float
    sent_at: float | None = None
    given_up: str | None = None

    def to_json(self) -> Json:
        out = {
            "day": self.day,
            "metric": self.metric,
            "value": self.value,
            "epsilon": self.epsilon,
            "due": self.due,
            "sent_at": self.sent_at,
        }
        if self.given_up is not None:
            out["given_up"] = self.given_up
        return out


@dataclass(slots=True)
class AnalyticsState(StateRecord):
    """Statistics participation, the pinned aggregators, the published parameters and
    every report prepared (``analytics``)."""

    NAME: ClassVar[str] = "analytics"

    enabled: bool = False
    pin: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    prepared_through: int | None = None
    error: str | None = None
    reports: list[AnalyticsReport] = field(default_factory=list)

    @classmethod
    def decode(cls, value: Json) -> AnalyticsState:
        return cls(
            bool(value.get("enabled", False)),
            value.get("pin"),
            value.get("params"),
            value.get("prepared_through"),
            value.get("error"),
            [AnalyticsReport(**r) for r in value.get("reports", [])],
        )

    def encode(self) -> Json:
        out: Json = {"enabled": self.enabled, "reports": [r.to_json() for r in self.reports]}
        for name in ("pin", "params", "prepared_through", "error"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


@dataclass(slots=True)
class SealedBox:
    """One sealed report not yet accepted: the two shares (base64), when it is due, when
    it is tried next and how often it was tried."""

    leader: str
    helper: str
    due: float
    next_try: float
    attempts: int = 0


@dataclass(slots=True)
class Outbox(StateRecord):
    """The sealed statistics reports not yet sent, by ``"<day>/<metric>"``."""

    NAME: ClassVar[str] = "analytics_outbox"

    boxes: dict[str, SealedBox] = field(default_factory=dict)

    @classmethod
    def decode(cls, value: Json) -> Outbox:
        return cls({k: SealedBox(**b) for k, b in value.get("boxes", {}).items()})

    def encode(self) -> Json:
        return {
            "boxes": {
                k: {
                    "leader": b.leader,
                    "helper": b.helper,
                    "due": b.due,
                    "next_try": b.next_try,
                    "attempts": b.attempts,
                }
                for k, b in self.boxes.items()
            }
        }


#: Every kind of state record, by name.
RECORDS: dict[str, type[StateRecord]] = {
    kind.NAME: kind
    for kind in (
        StepState,
        SyncState,
        Matches,
        CheckRecord,
        Notified,
        ReportState,
        Warnings,
        AnalyticsState,
        Outbox,
        Regions,
    )
}
