"""The agent's encrypted local store: one SQLite file (WAL) plus a 0600 key file.

``protocol_spec/SPEC.md`` AGENT-7 … AGENT-10. Every sensitive value (the device's keys,
what it heard, exposure results, report state) is sealed with
:class:`phe_trace.crypto.SealingKey` under associated data naming the record kind. In
clear are only row ids and a coarse UTC day number per row, which the retention purge
needs without opening anything. Sightings are sealed one scan window per row, which
keeps the per-record cost low at 14 days × 288 windows.

Opened records are remembered in memory only, in this process, so a daily check does not
open 14 days of sightings again (:class:`_SightingDay`): per UTC day, the opened rows and a
BLAKE2b digest of the sealed rows they came from; keys with the sealed row itself; state
records without their padding, with a digest of the sealed row. Each read compares these
with the rows in the database, so a row added, deleted or altered by anyone else is opened
afresh (and a tampered one still counts as unreadable). Nothing opened is ever written
back; what is remembered goes with the purge and with :meth:`AgentStore.close`.

State records are typed (:mod:`.state`): :meth:`AgentStore.load` reads one of any
version, migrating it, and :meth:`AgentStore.save` writes the current version;
:meth:`AgentStore.get_meta` and :meth:`AgentStore.put_meta` are the untyped JSON beneath.
The retention rule (:mod:`.retention`) is applied by :meth:`AgentStore.purge`.

Deleting ``store.key`` makes every sealed record unreadable (``wipe`` deletes it first).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar, cast

from phe_trace.crypto import SealError, SealingKey

from .errors import StoreCorruptError, StoreError, StoreKeyError
from .records import (
    SightingRecord,
    StoredKey,
    decode_sightings,
    decode_tek,
    encode_sightings,
    encode_tek,
    sighting_record_size,
)
from .retention import RULES, SECONDS_PER_DAY, Cutoff, utc_day
from .state import RECORDS, CheckRecord, StateRecord, thawed

__all__ = [
    "DB_NAME",
    "KEY_NAME",
    "META_NAMES",
    "META_PAD",
    "ROW_TABLES",
    "SECONDS_PER_DAY",
    "AgentStore",
    "utc_day",
]

log = logging.getLogger(__name__)

R = TypeVar("R", bound=StateRecord)

#: File names inside the data directory.
DB_NAME = "agent.sqlite3"
KEY_NAME = "store.key"
_SCHEMA_VERSION = 1
_CANARY = b"phe-trace agent store"
#: The small state records; all exist from the store's creation (AGENT-7).
META_NAMES = (
    "state",
    "sync",
    "matches",
    "last_check",
    "notified",
    "report",
    "warnings",
    "analytics",
    "analytics_outbox",
)
#: State records ``export-data`` leaves out: sealed boxes for the aggregators, of no
#: use to the person (what they hold is listed in the ``analytics`` record).
UNEXPORTED_META = ("analytics_outbox",)
#: Sealed state records are padded to a multiple of this many bytes (AGENT-7).
META_PAD = 4096

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, sealed BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tek (day INTEGER PRIMARY KEY, sealed BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sighting_window (
    id INTEGER PRIMARY KEY, day INTEGER NOT NULL, sealed BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS sighting_window_day ON sighting_window (day);
CREATE TABLE IF NOT EXISTS check_result (
    id INTEGER PRIMARY KEY, day INTEGER NOT NULL, sealed BLOB NOT NULL);
"""
#: The tables whose rows carry a UTC ``day`` (the retention purge deletes by it).
ROW_TABLES = ("tek", "sighting_window", "check_result")


#: The columns each table must have (name -> declared type), checked at every open. Every
#: read of a sealed cell casts it to a BLOB, so a cell rewritten as text or a number is
#: an unreadable record like any other, not a type error.
_COLUMNS = {
    "meta": {"name": "TEXT", "sealed": "BLOB"},
    "tek": {"day": "INTEGER", "sealed": "BLOB"},
    "sighting_window": {"id": "INTEGER", "day": "INTEGER", "sealed": "BLOB"},
    "check_result": {"id": "INTEGER", "day": "INTEGER", "sealed": "BLOB"},
}


def _schema_damage(conn: sqlite3.Connection) -> str | None:
    """What is wrong with the tables' shape, or ``None`` (damage ``quick_check`` passes)."""
    for table, wanted in _COLUMNS.items():
        found = {row[1]: row[2].upper() for row in conn.execute(f"PRAGMA table_info({table})")}
        for column, kind in wanted.items():
            if found.get(column) != kind:
                return f"table {table} has no {kind} column {column}"
    return None


def _sealed_digest(sealed: bytes) -> bytes:
    """What a remembered state record is compared by: a digest of its sealed row."""
    return hashlib.blake2b(sealed, digest_size=32, person=b"phe-trace/meta").digest()


def _row_digest() -> Any:
    return hashlib.blake2b(digest_size=32, person=b"phe-trace/rows")


@dataclass(slots=True)
class _SightingDay:
    """One UTC day of sighting rows, opened: what a read of that day returns.

    ``digest`` hashes the day's sealed rows in row order (each with its length), so a
    read can tell whether the database still holds exactly the rows this was opened from.
    """

    digest: Any = field(default_factory=_row_digest)
    plain: bytearray = field(default_factory=bytearray)
    unreadable: int = 0

    def add(self, sealed: bytes, plain: bytes | None) -> None:
        self.digest.update(len(sealed).to_bytes(4, "little") + sealed)
        if plain is None:
            self.unreadable += 1
        else:
            self.plain += plain


class AgentStore:
    """Sealed records in SQLite. Build with :meth:`open`; close with :meth:`close`."""

    def __init__(self, conn: sqlite3.Connection, key: SealingKey, data_dir: Path | None) -> None:
        self._conn = conn
        self._key = key
        self.data_dir = data_dir
        #: Records that failed to open since the store was opened (tampered or damaged).
        self.unreadable_records = 0
        #: Names of state records that failed to open (the agent recovers from these).
        self.unreadable_meta: set[str] = set()
        #: Opened records, in memory only (see the module docstring): sightings per UTC
        #: day; keys per day and state records per name, each with the sealed row it was
        #: opened from.
        self._sighting_days: dict[int, _SightingDay] = {}
        self._tek_rows: dict[int, tuple[bytes, StoredKey]] = {}
        self._meta_rows: dict[str, tuple[bytes, bytes]] = {}
        #: State records as decoded (or saved) from the row whose digest they carry; a
        #: load hands out a copy (:func:`.state.thawed`), so no caller shares one.
        self._records: dict[str, tuple[bytes, StateRecord]] = {}
        #: Set by the first read of the sightings for matching: from then on new rows are
        #: remembered as they are sealed (a process that never checks keeps nothing).
        self._reading_sightings = False

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def open(cls, data_dir: Path | None) -> AgentStore:
        """Open (or create) the store in ``data_dir``; ``None`` keeps it in memory.

        Raises :class:`StoreKeyError` when the key file is missing or does not open the
        store, and :class:`StoreCorruptError` when the database file is damaged.
        """
        if data_dir is None:
            return cls._init(sqlite3.connect(":memory:"), SealingKey.generate(), None, True)
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        db_path, key_path = data_dir / DB_NAME, data_dir / KEY_NAME
        fresh = not db_path.exists() or db_path.stat().st_size == 0
        if not fresh and not key_path.exists():
            raise StoreKeyError(
                f"{key_path} is missing: the store {db_path} cannot be read without it "
                "(run `phe-trace agent wipe` to start over)"
            )
        key = SealingKey.load_or_create(key_path)
        try:
            conn = sqlite3.connect(db_path)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA secure_delete=ON")  # purged rows leave no trace in the pages
            row = conn.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(str(row[0] if row else "no result"))
        except sqlite3.DatabaseError as exc:
            raise StoreCorruptError(
                f"the store {db_path} is damaged ({exc}); it was left in place untouched"
            ) from None
        return cls._init(conn, key, data_dir, fresh)

    @classmethod
    def _init(
        cls, conn: sqlite3.Connection, key: SealingKey, data_dir: Path | None, fresh: bool
    ) -> AgentStore:
        store = cls(conn, key, data_dir)
        try:
            with conn:
                conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreCorruptError(f"the store cannot be initialised: {exc}") from None
        damage = _schema_damage(conn)
        if damage is not None:
            conn.close()
            raise StoreCorruptError(
                f"the store is damaged ({damage}); it was left in place untouched"
            )
        canary = conn.execute(
            "SELECT CAST(sealed AS BLOB) FROM meta WHERE name = 'store'"
        ).fetchone()
        if canary is None:
            if not fresh and conn.execute("SELECT count(*) FROM tek").fetchone()[0]:
                conn.close()
                raise StoreKeyError("the store has records but no key check record")
            with conn:
                conn.execute(
                    "INSERT INTO meta (name, sealed) VALUES ('store', ?)",
                    (key.seal("meta/store", _CANARY + bytes([_SCHEMA_VERSION])),),
                )
            for name in META_NAMES:
                store.put_meta(name, {})
        else:
            try:
                key.open("meta/store", canary[0])
            except SealError:
                conn.close()
                raise StoreKeyError(
                    "the sealing key does not open this store (was store.key replaced?)"
                ) from None
        return store

    @staticmethod
    def move_aside(data_dir: Path, suffix: str) -> Path:
        """Rename a damaged database (and its WAL files) to ``*.corrupt-<suffix>``; no deletion."""
        db_path = data_dir / DB_NAME
        target = db_path.with_name(f"{DB_NAME}.corrupt-{suffix}")
        for ext in ("", "-wal", "-shm"):
            src = Path(str(db_path) + ext)
            if src.exists():
                src.rename(Path(str(target) + ext))
        return target

    def close(self) -> None:
        self._forget()
        self._conn.close()

    def _forget(self) -> None:
        self._sighting_days.clear()
        self._tek_rows.clear()
        self._meta_rows.clear()
        self._records.clear()

    # -- sealing helpers ---------------------------------------------------------------

    def _open(self, kind: str, sealed: bytes) -> bytes | None:
        try:
            return self._key.open(kind, sealed)
        except SealError:
            self.unreadable_records += 1
            log.warning("a sealed %s record could not be opened and was skipped", kind)
            return None

    def _open_quiet(self, kind: str, sealed: bytes) -> bytes | None:
        """Like :meth:`_open`, for a caller that counts and logs the failures itself."""
        try:
            return self._key.open(kind, sealed)
        except SealError:
            return None

    # -- keys --------------------------------------------------------------------------

    def put_tek(self, day: int, key: StoredKey) -> None:
        sealed = self._key.seal("tek", encode_tek(key))
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO tek (day, sealed) VALUES (?, ?)", (day, sealed)
            )
        self._tek_rows[day] = (sealed, key)

    def _tek(self, day: int, sealed: bytes) -> StoredKey | None:
        """The key sealed in ``sealed`` (the row of ``day``), opened once per row content."""
        known = self._tek_rows.get(day)
        if known is not None and known[0] == sealed:
            return known[1]
        plain = self._open("tek", sealed)
        if plain is None:
            return None
        key = decode_tek(plain)
        self._tek_rows[day] = (sealed, key)
        return key

    def get_tek(self, day: int) -> StoredKey | None:
        row = self._conn.execute(
            "SELECT CAST(sealed AS BLOB) FROM tek WHERE day = ?", (day,)
        ).fetchone()
        return None if row is None else self._tek(day, row[0])

    def teks(self) -> list[StoredKey]:
        """All stored keys, oldest first."""
        out = []
        for day, sealed in self._conn.execute(
            "SELECT day, CAST(sealed AS BLOB) FROM tek ORDER BY day"
        ):
            key = self._tek(day, sealed)
            if key is not None:
                out.append(key)
        return out

    # -- sightings ---------------------------------------------------------------------

    def add_sightings(self, records: list[SightingRecord]) -> None:
        """Store one scan window's aggregated sightings (grouped into rows per UTC day)."""
        by_day: dict[int, list[SightingRecord]] = {}
        for r in records:
            by_day.setdefault(utc_day(r.unix_time), []).append(r)
        rows = []
        for day, rs in by_day.items():
            plain = encode_sightings(rs)
            rows.append((day, self._key.seal("sightings", plain), plain))
        with self._conn:
            self._conn.executemany(
                "INSERT INTO sighting_window (day, sealed) VALUES (?, ?)",
                [(day, sealed) for day, sealed, _ in rows],
            )
        if self._reading_sightings:  # keep what a check reads next; the new row is its day's last
            for day, sealed, plain in rows:
                self._sighting_days.setdefault(day, _SightingDay()).add(sealed, plain)

    def sightings(self) -> list[SightingRecord]:
        """Every stored sighting (unreadable rows are skipped and counted)."""
        out: list[SightingRecord] = []
        for (sealed,) in self._conn.execute(
            "SELECT CAST(sealed AS BLOB) FROM sighting_window ORDER BY id"
        ):
            plain = self._open("sightings", sealed)
            if plain is not None:
                out.extend(decode_sightings(plain))
        return out

    def sighting_plaintexts(self) -> Iterator[bytes]:
        """The opened sighting records, undecoded, one run of records per UTC day (oldest
        day first, rows in the order stored): the fast path for matching.

        Days opened before are taken from memory when their sealed rows are unchanged;
        unreadable rows are skipped and counted as on every read.
        """
        self._reading_sightings = True
        rows = self._conn.execute(
            "SELECT day, CAST(sealed AS BLOB) FROM sighting_window ORDER BY day, id"
        )
        seen: set[int] = set()
        for day, group in groupby(rows, key=itemgetter(0)):
            sealed_rows = [sealed for _, sealed in group]
            opened = self._sighting_day(day, sealed_rows)
            seen.add(day)
            self.unreadable_records += opened.unreadable
            if opened.plain:
                yield bytes(opened.plain)
        for day in set(self._sighting_days) - seen:
            del self._sighting_days[day]

    def _sighting_day(self, day: int, sealed_rows: list[bytes]) -> _SightingDay:
        """The day's rows opened: remembered when unchanged, else opened now."""
        known = self._sighting_days.get(day)
        if known is not None:
            check = _row_digest()
            for sealed in sealed_rows:
                check.update(len(sealed).to_bytes(4, "little") + sealed)
            if check.digest() == known.digest.digest():
                return known
        opened = _SightingDay()
        size = sighting_record_size()
        for sealed in sealed_rows:
            plain = self._open_quiet("sightings", sealed)
            if plain is not None and len(plain) % size:
                raise StoreError("a stored sighting record has the wrong length")
            opened.add(sealed, plain)
        if opened.unreadable:
            log.warning("%d sealed sightings records could not be opened", opened.unreadable)
        self._sighting_days[day] = opened
        return opened

    def sighting_windows(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM sighting_window").fetchone()[0])

    def first_record_day(self) -> int | None:
        """The earliest UTC day of a stored key or sighting row, from the day numbers in
        clear (nothing is opened); None when the store holds neither (SPEC SCALE-8)."""
        row = self._conn.execute(
            "SELECT min(day) FROM (SELECT min(day) AS day FROM tek"
            " UNION ALL SELECT min(day) FROM sighting_window)"
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # -- small sealed JSON values ----------------------------------------------------------

    def get_meta(self, name: str) -> dict[str, Any] | None:
        row = self._meta_row(name)
        if row is None:
            return None
        value = json.loads(row[1])
        if not isinstance(value, dict):
            raise StoreError(f"stored value {name!r} is not an object")
        return value

    def _meta_row(self, name: str) -> tuple[bytes, bytes] | None:
        """(digest of the sealed row, its opened JSON) of state record ``name``; None when
        there is none or it cannot be opened (then ``name`` is in unreadable_meta)."""
        row = self._conn.execute(
            "SELECT CAST(sealed AS BLOB) FROM meta WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            return None
        digest = _sealed_digest(row[0])
        known = self._meta_rows.get(name)
        if known is None or known[0] != digest:
            plain = self._open(f"meta/{name}", row[0])
            if plain is None:
                self.unreadable_meta.add(name)
                return None
            known = self._meta_rows[name] = (digest, plain.rstrip(b" "))
        return known

    def put_meta(self, name: str, value: dict[str, Any]) -> None:
        """Seal ``value`` as state record ``name``, padded with JSON whitespace (AGENT-7)."""
        plain = json.dumps(value, sort_keys=True).encode()
        plain += b" " * (-len(plain) % META_PAD)
        sealed = self._key.seal(f"meta/{name}", plain)
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO meta (name, sealed) VALUES (?, ?)", (name, sealed)
            )
        self._meta_rows[name] = (_sealed_digest(sealed), plain.rstrip(b" "))

    def load(self, kind: type[R]) -> R:
        """State record ``kind`` (:mod:`.state`), migrated from the version it was written
        in; the empty record when there is none or it cannot be opened (then its name is
        in :attr:`unreadable_meta`). A record is decoded once per stored row: while the row
        is the one it was read from (or saved as), a load is a copy of it."""
        row = self._meta_row(kind.NAME)
        if row is None:
            return kind()
        digest = row[0]
        known = self._records.get(kind.NAME)
        if known is not None and known[0] == digest and type(known[1]) is kind:
            return cast(R, thawed(known[1]))
        value = self.get_meta(kind.NAME)
        if value is None:
            return kind()
        record = kind.from_json(value)
        self._records[kind.NAME] = (digest, thawed(record))
        return record

    def save(self, record: StateRecord) -> None:
        """Seal ``record`` as its current version (:mod:`.state`)."""
        self.put_meta(record.NAME, record.to_json())
        self._records[record.NAME] = (self._meta_rows[record.NAME][0], thawed(record))

    # -- check results -----------------------------------------------------------------

    def add_check_result(self, day: int, result: CheckRecord | dict[str, Any]) -> None:
        """Keep one check's summary in the risk history, dated by UTC day ``day``."""
        value = result.to_json() if isinstance(result, CheckRecord) else result
        sealed = self._key.seal("check", json.dumps(value, sort_keys=True).encode())
        with self._conn:
            self._conn.execute(
                "INSERT INTO check_result (day, sealed) VALUES (?, ?)", (day, sealed)
            )

    def checks(self) -> list[CheckRecord]:
        """The risk history, oldest first, as records (:class:`.state.CheckRecord`)."""
        return [CheckRecord.from_json(value) for value in self.check_results()]

    def check_results(self) -> list[dict[str, Any]]:
        """The risk history as stored (JSON objects), oldest first."""
        out = []
        for (sealed,) in self._conn.execute(
            "SELECT CAST(sealed AS BLOB) FROM check_result ORDER BY id"
        ):
            plain = self._open("check", sealed)
            if plain is not None:
                out.append(json.loads(plain))
        return out

    # -- retention, export, wipe -----------------------------------------------------------

    def purge(self, now: float, retention_days: int) -> dict[str, int]:
        """Apply the retention rule to everything stored (AGENT-9, :mod:`.retention`):
        keep only what is dated on the current UTC day or the ``retention_days - 1``
        before it, so nothing older than ``retention_days × 24 h`` survives. Returns the
        number of items dropped per record (row tables by name, state records as
        ``meta/<name>``)."""
        cut = Cutoff.at(now, retention_days)
        counts = self.delete_days_before(cut.first_day, ROW_TABLES)
        for rule in RULES:
            if rule.prune is None:
                continue
            kind = RECORDS[rule.record.removeprefix("meta/")]
            value = self.get_meta(kind.NAME)
            if value is None:  # missing or unreadable: nothing to keep
                continue
            record = kind.from_json(value)
            kept, dropped = rule.prune(record, cut)
            if kept is not record:
                self.save(kept)
            counts[rule.record] = dropped
        return counts

    def delete_days_before(self, first_kept: int, tables: tuple[str, ...]) -> dict[str, int]:
        """Delete the rows of ``tables`` dated before UTC day ``first_kept``, and forget
        what was remembered of them; the number of rows deleted per table."""
        for day in [d for d in self._sighting_days if d < first_kept]:
            del self._sighting_days[day]
        for day in [d for d in self._tek_rows if d < first_kept]:
            del self._tek_rows[day]
        counts = {}
        with self._conn:
            for table in tables:
                if table not in ROW_TABLES:
                    raise StoreError(f"no table {table!r} in the store")
                cur = self._conn.execute(f"DELETE FROM {table} WHERE day < ?", (first_kept,))  # noqa: S608 - names checked above
                counts[table] = cur.rowcount
        return counts

    def export_data(self) -> dict[str, Any]:
        """Everything stored, opened, as JSON-ready values for the person (AGENT-10);
        times as ISO 8601 in UTC."""
        meta = {}
        for (name,) in self._conn.execute("SELECT name FROM meta WHERE name != 'store'"):
            if name not in UNEXPORTED_META:
                meta[name] = self.get_meta(name)
        return {
            "temporary_exposure_keys": [
                {
                    "key_data": k.key_data.hex(),
                    "rolling_start_interval_number": k.rolling_start_interval_number,
                    "rolling_period": k.rolling_period,
                }
                for k in self.teks()
            ],
            "sightings": [
                {
                    "rpi": s.rpi.hex(),
                    "aem": s.aem.hex(),
                    "time": iso_time(s.unix_time),
                    "duration_s": s.duration_s,
                    "rssi_max": s.rssi_max,
                    "rssi_mean": s.rssi_mean,
                    "count": s.count,
                }
                for s in self.sightings()
            ],
            "checks": _readable_times(self.check_results()),
            "state": _readable_times(meta),
            "unreadable_records": self.unreadable_records,
        }

    @staticmethod
    def wipe(data_dir: Path) -> list[Path]:
        """Delete the key file first (crypto-erasure), then the database files."""
        removed = []
        for name in (KEY_NAME, DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"):
            path = data_dir / name
            if path.exists():
                if name == KEY_NAME:
                    with open(path, "r+b") as f:
                        f.write(bytes(path.stat().st_size))
                        f.flush()
                        os.fsync(f.fileno())
                path.unlink()
                removed.append(path)
        return removed


def iso_time(unix_seconds: float) -> str:
    """``unix_seconds`` as ISO 8601 in UTC, to the millisecond (``…T12:00:00.000+00:00``)."""
    moment = dt.datetime.fromtimestamp(unix_seconds, dt.UTC)
    return moment.isoformat(timespec="milliseconds")


def _readable_times(value: Any) -> Any:
    """A copy of stored state with every time (``at``, ``*_at``: unix seconds) in ISO 8601."""
    if isinstance(value, list):
        return [_readable_times(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for name, item in value.items():
        is_time = name == "at" or name.endswith("_at")
        if is_time and isinstance(item, int | float) and not isinstance(item, bool):
            out[name] = iso_time(float(item))
        else:
            out[name] = _readable_times(item)
    return out
