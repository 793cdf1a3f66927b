"""A stolen device store: unreadable without its key, and nothing older than 14 days.

The agent runs for 20 simulated days, hearing a neighbour every day. The store's files
are then read as a thief would read them: the SQLite file holds none of the keys or
identifiers in clear; with the key file missing or replaced, the store refuses to open
and creates no key; after the purge at start-up, nothing older than 14 × 24 h remains
readable through the store — nor as a sealed row in the database pages.
(SPEC AGENT-7, AGENT-8, AGENT-9, SEAL-1, SEAL-2, SEAL-3)
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

from phe_trace.agent import Agent, AgentConfig, AgentStore, StoreKeyError
from phe_trace.agent.radio.sim import SimRadio
from tests.agent.conftest import T0

DAY = 86_400
DAYS = 20
Device = tuple[Path, list[bytes], list[bytes], dict[bytes, int]]


def _run(tmp_path: Path, ever: dict[bytes, int]) -> tuple[Agent, Agent]:
    """Two agents for DAYS days; ``b`` hears ``a`` for an hour each day.

    ``ever`` collects every sealed row ``b``'s database held at the end of a day, by day.
    """
    agents = []
    for name, seed in (("a", 1), ("b", 2)):
        config = AgentConfig(data_dir=tmp_path / name, radio="sim", desktop_notifications=False)
        agents.append(Agent.open(config, now=T0, radio=SimRadio(), rng=random.Random(seed)))
    a, b = agents
    for day in range(DAYS):
        t = T0 + day * DAY + 10 * 3600
        while t < T0 + day * DAY + 11 * 3600:
            a.tick(t)
            b.tick(t)
            b.radio.inject(a.radio.current_payload(), rssi=-60, unix_time=t)  # type: ignore[union-attr]
            t += 300
        for table, rows in _sealed_rows(tmp_path / "b" / "agent.sqlite3").items():
            ever.update({blob: day for day, blob in rows})
    return a, b


@pytest.fixture
def device(tmp_path: Path) -> tuple[Path, list[bytes], list[bytes], dict[bytes, int]]:
    """``b``'s data directory (closed), its keys, what it heard, every sealed row it had."""
    ever: dict[bytes, int] = {}
    a, b = _run(tmp_path, ever)
    teks = [k.key_data for k in b.store.teks()]
    heard = [s.rpi for s in b.store.sightings()]
    a.close()
    b.close()
    return tmp_path / "b", teks, heard, ever


def _raw(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.name != "store.key")


def test_nothing_in_clear_in_the_store_files(device: Device) -> None:
    """Keys and heard identifiers appear in no file beside the key (SPEC AGENT-7, SEAL-2)."""
    directory, teks, heard, _ = device
    assert len(teks) >= 14 and len(heard) >= 13 * 12
    raw = _raw(directory)
    for value in [*teks, *heard]:
        assert value not in raw and value.hex().encode() not in raw
    key_file = directory / "store.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_store_unreadable_without_its_key(device: Device, tmp_path: Path) -> None:
    """A missing or different key is refused; no replacement key is made (SPEC AGENT-8)."""
    directory, _, _, _ = device
    stolen = tmp_path / "stolen"
    shutil.copytree(directory, stolen)
    (stolen / "store.key").unlink()
    with pytest.raises(StoreKeyError):
        AgentStore.open(stolen)
    assert not (stolen / "store.key").exists()
    other = tmp_path / "other"
    AgentStore.open(other).close()  # a store with a key of its own
    shutil.copy(other / "store.key", stolen / "store.key")
    with pytest.raises(StoreKeyError):
        AgentStore.open(stolen)


def _sealed_rows(db: Path) -> dict[str, list[tuple[int, bytes]]]:
    conn = sqlite3.connect(db)
    try:
        return {
            table: conn.execute(f"SELECT day, sealed FROM {table}").fetchall()
            for table in ("tek", "sighting_window", "check_result")
        }
    finally:
        conn.close()


def test_purge_leaves_nothing_older_than_14_days(
    device: Device,
) -> None:
    """After the purge at start-up, everything readable is from the last 14 days (AGENT-9)."""
    directory, _, _, _ = device
    now = T0 + (DAYS - 1) * DAY + 12 * 3600
    config = AgentConfig(data_dir=directory, radio="sim", desktop_notifications=False)
    agent = Agent.open(config, now=now, radio=SimRadio())
    oldest = now - 14 * DAY
    data = agent.store.export_data()
    assert data["temporary_exposure_keys"] and data["sightings"]
    assert all(k["rolling_start_interval_number"] * 600 >= oldest - DAY
               for k in data["temporary_exposure_keys"])  # fmt: skip
    assert min(
        k["rolling_start_interval_number"] for k in data["temporary_exposure_keys"]
    ) * 600 > (T0 + (DAYS - 15) * DAY)
    assert all(
        dt.datetime.fromisoformat(s["time"]).timestamp() >= oldest for s in data["sightings"]
    )
    assert len(agent.store.teks()) == 14
    agent.close()


def test_purged_rows_do_not_survive_in_the_database_pages(
    device: Device,
) -> None:
    """Sealed rows of purged days are gone from the file too, not only from the tables.

    Without this a thief holding the key file could read deleted records back from
    SQLite's free pages (SPEC AGENT-9: "no record is older than 14 × 24 h").
    """
    directory, _, _, ever = device
    now = T0 + (DAYS - 1) * DAY + 12 * 3600
    first_kept = int(now // DAY) - 14 + 1
    old = [blob for blob, day in ever.items() if day < first_kept]
    assert len(old) > 12
    config = AgentConfig(data_dir=directory, radio="sim", desktop_notifications=False)
    Agent.open(config, now=now, radio=SimRadio()).close()
    raw = _raw(directory)
    survivors = sum(1 for blob in old if blob[-32:] in raw)
    assert survivors == 0, f"{survivors} of {len(old)} purged sealed rows remain in the file"
