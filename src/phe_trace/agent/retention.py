"""What the agent keeps, and for how long: one rule for every record (SPEC AGENT-9).

The rule: an item is kept while its time falls on the current UTC day or on one of the
``retention_days - 1`` UTC days before it (``retention_days`` from the agent's settings,
default 14), so after a purge nothing in the store is older than ``retention_days × 24 h``.
:meth:`phe_trace.agent.store.AgentStore.purge` applies it to the whole store at every
start of the agent and on every new UTC day (the agent's tick, and a check that runs on a
new day); the readers of kept matches apply the same :class:`Cutoff` between purges.

:data:`RULES` is the one table of what the store holds and the time each item is dated
by: the row tables by their UTC day column, every state record item by item. The tests
check that it names every table and every state record the store has, so a new kind of
record cannot escape retention by being forgotten here.

Items stored before they carried a time (processed export files were a bare list of
names, warnings bare strings) are dated by the first purge that finds them: they too are
gone ``retention_days`` later at the latest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "RULES",
    "SECONDS_PER_DAY",
    "Cutoff",
    "Rule",
    "processed_files",
    "utc_day",
    "warning_items",
]

#: Seconds of one EN interval (the unit of a key's rolling start and period).
_INTERVAL_S = 600
SECONDS_PER_DAY = 86_400


def utc_day(unix_seconds: float) -> int:
    """The UTC day number (days since 1970-01-01) of a unix time."""
    return int(unix_seconds // SECONDS_PER_DAY)


@dataclass(frozen=True, slots=True)
class Cutoff:
    """The retention rule at one moment: the first UTC day still kept."""

    now: float
    first_day: int

    @classmethod
    def at(cls, now: float, retention_days: int) -> Cutoff:
        if retention_days < 1:
            raise ValueError("retention_days must be at least 1")
        return cls(now, utc_day(now) - retention_days + 1)

    def keeps(self, unix_time: float) -> bool:
        """Whether an item dated ``unix_time`` (unix seconds) is kept."""
        return utc_day(float(unix_time)) >= self.first_day

    def keeps_day(self, day: int) -> bool:
        """Whether an item dated by the UTC day number ``day`` is kept."""
        return int(day) >= self.first_day

    @property
    def oldest(self) -> float:
        """The earliest unix time still kept (midnight UTC of :attr:`first_day`)."""
        return float(self.first_day * SECONDS_PER_DAY)


#: A state record's pruning: (opened record, cutoff) → (what is kept, items dropped).
Prune = Callable[[dict[str, Any], Cutoff], tuple[dict[str, Any], int]]


@dataclass(frozen=True, slots=True)
class Rule:
    """One kind of record: where it lives, what it holds, what dates its items."""

    record: str
    holds: str
    dated_by: str
    #: ``None`` for a row table (rows go by their ``day`` column) and for the key check
    #: record, which holds no data and no time.
    prune: Prune | None = None


# -- dating and pruning each state record ---------------------------------------------------


def _whole(field: str) -> Prune:
    """A record that is one item, dated by ``field``: emptied when that time expires."""

    def prune(value: dict[str, Any], cut: Cutoff) -> tuple[dict[str, Any], int]:
        t = value.get(field)
        if t is None or cut.keeps(t):
            return value, 0
        return {}, 1

    return prune


def _state(value: dict[str, Any], cut: Cutoff) -> tuple[dict[str, Any], int]:
    t = value.get("last_now")
    if t is None or cut.keeps(t):
        return value, 0
    return {k: v for k, v in value.items() if k != "last_now"}, 1


def _matches(value: dict[str, Any], cut: Cutoff) -> tuple[dict[str, Any], int]:
    items = value.get("items", [])
    kept = [d for d in items if cut.keeps(d["s"][3])]
    return {**value, "items": kept} if len(kept) < len(items) else value, len(items) - len(kept)


def processed_files(listing: list[Any] | dict[str, Any], now: float) -> dict[str, float]:
    """A region's processed export files as stored in the sync record, name → the time
    the file is dated by (``agent.sync``). The old form, a list of names without a time,
    reads as dated ``now``."""
    if isinstance(listing, list):
        return dict.fromkeys((str(p) for p in listing), float(now))
    return {str(p): float(t) for p, t in listing.items()}


def open_key_end(encoded: list[Any]) -> float:
    """When a kept open key (``risk.encode_key`` form) stopped being valid: the end of
    its last interval, unix seconds."""
    return float((int(encoded[1]) + int(encoded[2])) * _INTERVAL_S)


def _sync(value: dict[str, Any], cut: Cutoff) -> tuple[dict[str, Any], int]:
    """Home's processed files, each followed region's, and the open keys."""
    dropped = 0

    def prune(listing: list[Any] | dict[str, Any]) -> dict[str, float]:
        nonlocal dropped
        files = processed_files(listing, cut.now)
        kept = {p: t for p, t in files.items() if cut.keeps(t)}
        dropped += len(files) - len(kept)
        return kept

    out = dict(value)
    if "processed" in value:
        out["processed"] = prune(value["processed"])
    if "regions" in value:
        out["regions"] = {name: prune(files) for name, files in value["regions"].items()}
    open_keys = value.get("open_keys", [])
    if open_keys:
        out["open_keys"] = [k for k in open_keys if cut.keeps(open_key_end(k))]
        dropped += len(open_keys) - len(out["open_keys"])
    return (value, 0) if out == value else (out, dropped)


def warning_items(value: dict[str, Any], now: float) -> list[dict[str, Any]]:
    """The warnings record's items as ``{"at", "message"}``; a bare string (the old form)
    reads as given at ``now``."""
    return [
        item if isinstance(item, dict) else {"at": float(now), "message": str(item)}
        for item in value.get("items", [])
    ]


def _warnings(value: dict[str, Any], cut: Cutoff) -> tuple[dict[str, Any], int]:
    items = warning_items(value, cut.now)
    kept = [w for w in items if cut.keeps(w["at"])]
    if len(kept) == len(items) and items == value.get("items", []):
        return value, 0
    return {**value, "items": kept}, len(items) - len(kept)


def _analytics(value: dict[str, Any], cut: Cutoff) -> tuple[dict[str, Any], int]:
    reports = value.get("reports", [])
    kept = [r for r in reports if cut.keeps_day(r["day"])]
    through = value.get("prepared_through")
    # A cursor before the first kept day says nothing the rule does not: every kept day
    # is then still to be prepared (agent.analytics reads a missing cursor that way).
    stale_cursor = through is not None and not cut.keeps_day(through)
    if len(kept) == len(reports) and not stale_cursor:
        return value, 0
    out = {k: v for k, v in value.items() if not (k == "prepared_through" and stale_cursor)}
    if "reports" in value:
        out["reports"] = kept
    return out, len(reports) - len(kept)


def _outbox(value: dict[str, Any], cut: Cutoff) -> tuple[dict[str, Any], int]:
    boxes = value.get("boxes", {})
    kept = {k: b for k, b in boxes.items() if cut.keeps_day(int(k.split("/")[0]))}
    return ({**value, "boxes": kept} if len(kept) < len(boxes) else value), len(boxes) - len(kept)


#: Everything the store holds, and the time each item is dated by.
RULES: tuple[Rule, ...] = (
    Rule("tek", "the device's own daily keys", "the key's UTC day (row column `day`)"),
    Rule(
        "sighting_window",
        "what one scan window heard: identifier, metadata, time, RSSI",
        "the UTC day of the sightings in the row (row column `day`)",
    ),
    Rule(
        "check_result",
        "the risk history: the result of every check",
        "the UTC day of the check (row column `day`)",
    ),
    Rule("meta/store", "the key check record (a constant)", "nothing: it holds no data"),
    Rule("meta/state", "the last step's time", "`last_now`", _state),
    Rule(
        "meta/sync",
        "processed export files, home's and each followed region's; keys still open",
        "a file: its check, or the end of its keys' last reception window when later; "
        "a key: the end of its validity",
        _sync,
    ),
    Rule(
        "meta/matches",
        "kept matches: diagnosis key, identifier, time, RSSI",
        "the sighting's time",
        _matches,
    ),
    Rule("meta/last_check", "the last check's summary", "`at`", _whole("at")),
    Rule("meta/notified", "the highest risk level notified", "`at`", _whole("at")),
    Rule(
        "meta/report",
        "the last report: revision token, test type, keys sent",
        "`published_at`",
        _whole("published_at"),
    ),
    Rule("meta/warnings", "warnings shown by `status`", "each warning's `at`", _warnings),
    Rule(
        "meta/analytics",
        "statistics participation; per report its day, metric, value, ε",
        "each report's `day`; the preparation cursor `prepared_through`",
        _analytics,
    ),
    Rule(
        "meta/regions",
        "the regions followed besides home (the person's setting)",
        "nothing: kept until `region remove` or `wipe`, like the settings",
    ),
    Rule(
        "meta/analytics_outbox",
        "sealed statistics reports not yet sent",
        "each report's day",
        _outbox,
    ),
)
