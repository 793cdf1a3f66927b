"""The encrypted store: sealing, key file, WAL, retention purge, export and wipe."""

from __future__ import annotations

import json
import sqlite3
import stat
import struct
from pathlib import Path

import pytest

from phe_trace.agent import (
    Agent,
    AgentConfig,
    AgentStore,
    SightingRecord,
    StoreCorruptError,
    StoredKey,
    StoreKeyError,
)
from phe_trace.agent.store import DB_NAME, KEY_NAME
from phe_trace.crypto import SealingKey

from .conftest import T0

TEK = bytes.fromhex("75c734c6dd1a782de7a965da5eb93125")
RPI = bytes.fromhex("8be6cd371c5c891604bfbe49df845096")


def _fill(store: AgentStore, t: float = T0) -> None:
    store.put_tek(int(t // 86400), StoredKey(TEK, int(t // 600), 144))
    store.add_sightings([SightingRecord(RPI, b"\x72\x03\x38\x74", t + 5, 1.5, -60, -62, 4)])
    store.put_meta("report", {"revision_token": "secret-token-value"})


def test_key_file_is_0600_and_database_in_wal_mode(tmp_path: Path) -> None:
    """(SPEC AGENT-7)"""
    store = AgentStore.open(tmp_path / "d")
    _fill(store)
    store.close()
    mode = stat.S_IMODE((tmp_path / "d" / KEY_NAME).stat().st_mode)
    assert mode == 0o600
    with sqlite3.connect(tmp_path / "d" / DB_NAME) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_nothing_sensitive_is_stored_in_clear(tmp_path: Path) -> None:
    """Keys, identifiers and tokens appear in no database file byte. (SPEC AGENT-7)"""
    store = AgentStore.open(tmp_path / "d")
    _fill(store)
    store.close()
    blob = b"".join(p.read_bytes() for p in (tmp_path / "d").glob(DB_NAME + "*"))
    for secret in (TEK, RPI, b"secret-token-value", TEK.hex().encode(), RPI.hex().encode()):
        assert secret not in blob


def test_store_is_unreadable_without_its_key(tmp_path: Path) -> None:
    """Another key or no key: refused with a clear error, nothing altered. (SPEC AGENT-8)"""
    d = tmp_path / "d"
    store = AgentStore.open(d)
    _fill(store)
    store.close()
    before = (d / DB_NAME).read_bytes()
    key_bytes = (d / KEY_NAME).read_bytes()
    (d / KEY_NAME).write_bytes(bytes(32))
    with pytest.raises(StoreKeyError, match="does not open"):
        AgentStore.open(d)
    # Even bypassing the check, every sealed record refuses the wrong key.
    conn = sqlite3.connect(d / DB_NAME)
    wrong = AgentStore(conn, SealingKey(bytes(32)), d)
    assert wrong.teks() == [] and wrong.sightings() == []
    assert wrong.unreadable_records == 2
    conn.close()
    (d / KEY_NAME).unlink()
    with pytest.raises(StoreKeyError, match="missing"):
        AgentStore.open(d)
    assert not (d / KEY_NAME).exists()  # no new key was made up
    (d / KEY_NAME).write_bytes(key_bytes)
    (d / KEY_NAME).chmod(0o600)
    store = AgentStore.open(d)
    assert store.teks()[0].key_data == TEK
    store.close()
    assert (d / DB_NAME).read_bytes()[:100] == before[:100]


def test_a_record_sealed_as_one_kind_does_not_open_as_another(tmp_path: Path) -> None:
    """(SPEC AGENT-7)"""
    store = AgentStore.open(tmp_path / "d")
    _fill(store)
    conn = store._conn
    [(sealed,)] = conn.execute("SELECT sealed FROM tek").fetchall()
    conn.execute("UPDATE sighting_window SET sealed = ?", (sealed,))
    conn.commit()
    assert store.sightings() == []
    assert store.unreadable_records == 1
    store.close()


def test_purge_removes_everything_older_than_14_days(tmp_path: Path) -> None:
    """After a purge nothing is older than 14 × 24 h; the last 14 days stay. (SPEC AGENT-9)"""
    store = AgentStore.open(tmp_path / "d")
    now = T0 + 30 * 86400 + 7 * 3600
    for age_h in range(0, 20 * 24, 5):
        t = now - age_h * 3600
        store.put_tek(int(t // 86400), StoredKey(TEK, int(t // 86400) * 144, 144))
        store.add_sightings([SightingRecord(RPI, bytes(4), t, 0, -60, -60, 1)])
        store.add_check_result(int(t // 86400), {"at": t})
    store.purge(now, 14)
    ages = [(now - s.unix_time) / 86400 for s in store.sightings()]
    assert max(ages) < 14
    assert min(ages) == 0
    # Everything of the last 13 full days is kept (retention is not over-eager).
    assert all(any(d <= a < d + 1 for a in ages) for d in range(13))
    starts = [k.rolling_start_interval_number for k in store.teks()]
    assert len(starts) == 14 and max(starts) == int(now // 86400) * 144
    assert all((now - r["at"]) < 14 * 86400 for r in store.check_results())
    store.close()


def test_agent_purges_on_start_and_every_day(make_agent, tmp_path: Path) -> None:
    """(SPEC AGENT-9)"""
    agent = make_agent("p")
    for day in range(20):
        agent.tick(T0 + day * 86400 + 3600)
    days = sorted(k.rolling_start_interval_number // 144 for k in agent.store.teks())
    assert days == list(range(int(T0 // 86400) + 6, int(T0 // 86400) + 20))
    agent.close()
    # Restart much later: the purge at start leaves only the current day's key.
    config = AgentConfig(data_dir=tmp_path / "p", radio="sim")
    later = Agent.open(config, now=T0 + 40 * 86400)
    assert later.store.teks() == []
    later.close()


def test_export_data_and_wipe(tmp_path: Path) -> None:
    """export-data is the decrypted content; wipe removes key and database. (SPEC AGENT-10)"""
    d = tmp_path / "d"
    store = AgentStore.open(d)
    _fill(store)
    data = json.loads(json.dumps(store.export_data()))
    store.close()
    assert data["temporary_exposure_keys"][0]["key_data"] == TEK.hex()
    assert data["sightings"][0]["rpi"] == RPI.hex()
    assert data["sightings"][0]["rssi_max"] == -60
    assert data["state"]["report"]["revision_token"] == "secret-token-value"
    removed = AgentStore.wipe(d)
    assert d / KEY_NAME in removed and d / DB_NAME in removed
    assert not list(d.glob(DB_NAME + "*")) and not (d / KEY_NAME).exists()
    fresh = AgentStore.open(d)
    assert fresh.teks() == [] and fresh.sightings() == []
    fresh.close()


def test_corrupt_database_is_reported_and_kept(tmp_path: Path) -> None:
    """A damaged file: clear error; with recovery it is renamed aside, byte for byte.

    (SPEC AGENT-8)
    """
    d = tmp_path / "d"
    store = AgentStore.open(d)
    _fill(store)
    store.close()
    garbage = b"this is not a database" * 200
    (d / DB_NAME).write_bytes(garbage)
    for ext in ("-wal", "-shm"):
        (d / (DB_NAME + ext)).unlink(missing_ok=True)
    config = AgentConfig(data_dir=d, radio="sim")
    with pytest.raises(StoreCorruptError, match="damaged"):
        Agent.open(config, now=T0)
    assert (d / DB_NAME).read_bytes() == garbage
    agent = Agent.open(config, now=T0, recover_corrupt=True)
    [kept] = list(d.glob(DB_NAME + ".corrupt-*"))
    assert kept.read_bytes() == garbage
    assert any(str(kept) in w for w in agent.warnings)
    agent.tick(T0 + 60)
    assert len(agent.store.teks()) == 1
    agent.close()


def test_state_records_do_not_reveal_a_report_by_presence_or_size(tmp_path: Path) -> None:
    """Every state record exists from creation, padded: a report adds no row, no bytes.

    (SPEC AGENT-7)
    """
    store = AgentStore.open(tmp_path / "d")
    conn = store._conn

    def rows() -> dict[str, int]:
        return {n: len(b) for n, b in conn.execute("SELECT name, sealed FROM meta")}

    before = rows()
    names = {"state", "sync", "matches", "last_check", "notified", "report", "warnings"}
    assert set(before) >= names
    # version 1 + nonce 24 + tag 16 around a plaintext of whole 4096-byte blocks (SEAL-2);
    # "store" is the key check, the same fixed value in every store
    state = {n: size for n, size in before.items() if n != "store"}
    assert {n: (size - 41) % 4096 for n, size in state.items()} == dict.fromkeys(state, 0)
    store.put_meta("report", {"published_at": 1.0, "revision_token": "x" * 300, "keys_sent": 14})
    store.put_meta("notified", {"level": "high", "at": 2.0})
    assert rows() == before
    assert store.get_meta("report")["keys_sent"] == 14
    store.close()


def _records_of(store: AgentStore) -> list[tuple[bytes, float]]:
    """(rpi, time) of every record the matching path reads, in a canonical order."""
    size = 36  # rpi 16, aem 4, time 8, duration 4, rssi max 1, rssi mean 1, count 2
    plain = b"".join(store.sighting_plaintexts())
    assert len(plain) % size == 0
    out = []
    for i in range(0, len(plain), size):
        record = plain[i : i + size]
        out.append((record[:16], struct.unpack_from("<d", record, 20)[0]))
    return sorted(out)


def _sealed_view(store: AgentStore) -> list[tuple[bytes, float]]:
    return sorted((s.rpi, s.unix_time) for s in store.sightings())


def test_matching_reads_what_is_in_the_database_even_when_changed_behind_it(
    tmp_path: Path,
) -> None:
    """The opened days kept in memory never hide a change to the database: a row added,
    deleted or altered by another connection is read as it is now; a tampered row counts
    as unreadable on every read; purged days are gone. (SPEC AGENT-7, AGENT-9)"""
    store = AgentStore.open(tmp_path / "d")
    day = 86400
    for k in range(6):
        t = T0 + (k % 3) * day + 60 * k
        store.add_sightings([SightingRecord(bytes([k]) * 16, bytes(4), t, 0, -60, -61, 1)])
    assert _records_of(store) == _sealed_view(store) and len(_sealed_view(store)) == 6
    # Added through the store after a read: part of the next read.
    store.add_sightings([SightingRecord(bytes([9]) * 16, bytes(4), T0 + 5, 0, -50, -50, 1)])
    assert _records_of(store) == _sealed_view(store) and len(_sealed_view(store)) == 7
    # Another connection (another process) deletes one row and copies another.
    other = sqlite3.connect(tmp_path / "d" / DB_NAME)
    with other:
        other.execute("DELETE FROM sighting_window WHERE id = 1")
        other.execute(
            "INSERT INTO sighting_window (day, sealed) SELECT day, sealed FROM sighting_window "
            "WHERE id = 2"
        )
    assert _records_of(store) == _sealed_view(store) and len(_sealed_view(store)) == 7
    assert bytes([0]) * 16 not in {r for r, _ in _records_of(store)}
    # A row altered in place: unreadable, skipped, counted at each read.
    [(sealed,)] = other.execute("SELECT sealed FROM sighting_window WHERE id = 3").fetchall()
    with other:
        other.execute(
            "UPDATE sighting_window SET sealed = ? WHERE id = 3",
            (sealed[:-1] + bytes([sealed[-1] ^ 1]),),
        )
    before = store.unreadable_records
    assert len(_records_of(store)) == 6
    assert store.unreadable_records == before + 1
    assert len(_records_of(store)) == 6
    assert store.unreadable_records == before + 2
    other.close()
    # The purge drops whole days, from the database and from what is read.
    store.purge(T0 + 14 * day, 14)
    assert _records_of(store) == _sealed_view(store)
    assert {int(t // day) for _, t in _records_of(store)} == {
        int(T0 // day) + 1,
        int(T0 // day) + 2,
    }
    store.close()


def test_keys_and_state_read_back_follow_the_database(tmp_path: Path) -> None:
    """Key and state rows changed by another connection are read as they are now.

    (SPEC AGENT-7)
    """
    store = AgentStore.open(tmp_path / "d")
    _fill(store)
    assert store.teks()[0].key_data == TEK
    assert store.get_meta("report") == {"revision_token": "secret-token-value"}
    with sqlite3.connect(tmp_path / "d" / DB_NAME) as conn:
        [(sealed,)] = conn.execute("SELECT sealed FROM meta WHERE name = 'sync'").fetchall()
        conn.execute("UPDATE meta SET sealed = ? WHERE name = 'report'", (sealed,))
    before = store.unreadable_records
    assert store.get_meta("report") is None  # sealed as another record: does not open
    assert store.unreadable_records == before + 1
    store.put_meta("report", {"revision_token": "another"})
    assert store.get_meta("report") == {"revision_token": "another"}
    with sqlite3.connect(tmp_path / "d" / DB_NAME) as conn:
        [(sealed,)] = conn.execute("SELECT sealed FROM tek").fetchall()
        conn.execute("UPDATE tek SET sealed = ?", (sealed + b"\x00",))  # no longer opens
    assert store.teks() == []
    assert store.get_tek(int(T0 // 86400)) is None
    store.close()
