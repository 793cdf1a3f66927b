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
from dataclasses import dataclass, replace
from typing import Any

from .state import (
    AnalyticsState,
    Matches,
    Outbox,
    Processed,
    StateRecord,
    SyncState,
    WarningItem,
    Warnings,
)

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


#: A state record's pruning: (opened record, cutoff) → (what is kept, items dropped); the
#: record itself when nothing changes.
Prune = Callable[[Any, Cutoff], tuple[Any, int]]


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

    def prune(value: StateRecord, cut: Cutoff) -> tuple[StateRecord, int]:
        t = getattr(value, field)
        if t is None or cut.keeps(t):
            return value, 0
        return type(value)(), 1

    return prune


def _matches(value: Matches, cut: Cutoff) -> tuple[Matches, int]:
    kept = [m for m in value.items if cut.keeps(m.sighting.unix_time)]
    dropped = len(value.items) - len(kept)
    return (Matches(kept) if dropped else value), dropped


def processed_files(listing: Processed, now: float) -> dict[str, float]:
    """A region's processed export files as kept in the sync record, name → the time the
    file is dated by (``agent.sync``); one not dated yet (the old form) reads as dated
    ``now``."""
    return {p: float(now) if t is None else t for p, t in listing.items()}


def _sync(value: SyncState, cut: Cutoff) -> tuple[SyncState, int]:
    """Home's processed files, each followed region's, and the open keys."""
    dropped = 0

    def prune(listing: Processed) -> Processed:
        nonlocal dropped
        files = processed_files(listing, cut.now)
        kept: Processed = {p: t for p, t in files.items() if cut.keeps(t)}
        dropped += len(files) - len(kept)
        return kept

    out = SyncState(
        prune(value.processed),
        {name: prune(files) for name, files in value.regions.items()},
        [k for k in value.open_keys if cut.keeps(k.valid_until)],
    )
    dropped += len(value.open_keys) - len(out.open_keys)
    return (value, 0) if out == value else (out, dropped)


def warning_items(value: Warnings, now: float) -> list[WarningItem]:
    """The warnings, one of the old undated form read as given at ``now``."""
    return value.dated(now)


def _warnings(value: Warnings, cut: Cutoff) -> tuple[Warnings, int]:
    items = value.dated(cut.now)
    kept = [w for w in items if cut.keeps(w.at or 0.0)]
    if len(kept) == len(items) and items == value.items:
        return value, 0
    return Warnings(kept), len(items) - len(kept)


def _analytics(value: AnalyticsState, cut: Cutoff) -> tuple[AnalyticsState, int]:
    kept = [r for r in value.reports if cut.keeps_day(r.day)]
    through = value.prepared_through
    # A cursor before the first kept day says nothing the rule does not: every kept day
    # is then still to be prepared (agent.analytics reads a missing cursor that way).
    stale_cursor = through is not None and not cut.keeps_day(through)
    if len(kept) == len(value.reports) and not stale_cursor:
        return value, 0
    out = replace(value, reports=kept, prepared_through=None if stale_cursor else through)
    return out, len(value.reports) - len(kept)


def _outbox(value: Outbox, cut: Cutoff) -> tuple[Outbox, int]:
    boxes = value.boxes
    kept = {k: b for k, b in boxes.items() if cut.keeps_day(int(k.split("/")[0]))}
    return (Outbox(kept) if len(kept) < len(boxes) else value), len(boxes) - len(kept)


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
    Rule("meta/state", "the last step's time", "`last_now`", _whole("last_now")),
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
