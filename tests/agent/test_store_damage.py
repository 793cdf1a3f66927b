"""A damaged or tampered store: exposures are rebuilt, never silently lost, and damage the
integrity check at open cannot see is one line, never a traceback (SPEC AGENT-20)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from phe_trace.agent import Agent, AgentConfig
from phe_trace.agent.radio.sim import SimRadio
from phe_trace.agent.store import DB_NAME, KEY_NAME
from phe_trace.serving import serve

from .conftest import T0
from .exports import confirmed, export_zip, new_signer, publish, spki
from .http_host import ExportHost
from .test_sync import DAY, NOW, _configure, _pair


@pytest.fixture
def host() -> Iterator[ExportHost]:
    h = ExportHost()
    with serve(h) as url:
        h.url = url
        yield h


def _flip_a_bit(db: Path, name: str) -> None:
    with sqlite3.connect(db) as conn:
        (sealed,) = conn.execute("SELECT sealed FROM meta WHERE name = ?", (name,)).fetchone()
        damaged = bytearray(sealed)
        damaged[len(damaged) // 2] ^= 0x01
        conn.execute("UPDATE meta SET sealed = ? WHERE name = ?", (bytes(damaged), name))


@pytest.mark.parametrize("record", ["matches", "sync"])
def test_an_unreadable_results_record_is_rebuilt_and_the_person_told(
    make_agent, host: ExportHost, tmp_path: Path, record: str
) -> None:
    """AGENT-20: one flipped bit in the kept matches (or the processed-file list) does not
    erase the exposure: the next check downloads the files again, matches the stored
    sightings, and status names what happened."""
    a, b = _pair(make_agent)
    signer = new_signer()
    [a_key] = a.store.teks()
    zips = [
        export_zip(signer, [confirmed(a_key.key_data, a_key.rolling_start_interval_number)], 0, 1)
    ]
    publish(host.files, zips, int(T0 + DAY))
    _configure(b, host, spki(signer))
    first = b.sync(NOW)
    assert first.matched_sightings == 12
    assert b.status(NOW)["last_exposure_day"] == "2026-11-02"
    config = b.config
    b.close()

    _flip_a_bit(tmp_path / "b" / DB_NAME, record)
    reopened = Agent.open(config, now=NOW + 60, radio=SimRadio())
    try:
        status = reopened.status(NOW + 60)
        assert any("could not be read" in w for w in status["warnings"]), status["warnings"]
        host.requests.clear()
        again = reopened.sync(NOW + 120)
        assert again.files_checked == 1  # downloaded again
        assert again.matched_sightings == 12
        assert reopened.status(NOW + 120)["last_exposure_day"] == "2026-11-02"
    finally:
        reopened.close()


def _agent_status(data_dir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_")}
    env["HOME"] = str(tmp_path / "home")
    return subprocess.run(
        [sys.executable, "-m", "phe_trace.cli", "agent", "status", "--data-dir", str(data_dir)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _key_is_a_directory(data: Path) -> None:
    (data / KEY_NAME).unlink()
    (data / KEY_NAME).mkdir()


def _table_dropped(data: Path) -> None:
    with sqlite3.connect(data / DB_NAME) as conn:
        conn.execute("DROP TABLE sighting_window")
        conn.execute("CREATE TABLE sighting_window (x TEXT)")


def _meta_dropped(data: Path) -> None:
    with sqlite3.connect(data / DB_NAME) as conn:
        conn.execute("DROP TABLE meta")
        conn.execute("CREATE TABLE meta (other TEXT)")


def _cell_as_text(data: Path) -> None:
    with sqlite3.connect(data / DB_NAME) as conn:
        conn.execute("UPDATE meta SET sealed = 'not a sealed box' WHERE name = 'sync'")


def _tek_cell_as_number(data: Path) -> None:
    with sqlite3.connect(data / DB_NAME) as conn:
        conn.execute("UPDATE tek SET sealed = 42")


def _key_truncated(data: Path) -> None:
    (data / KEY_NAME).write_bytes((data / KEY_NAME).read_bytes()[:5])


DAMAGES = {
    "key-is-a-directory": _key_is_a_directory,
    "table-replaced": _table_dropped,
    "meta-replaced": _meta_dropped,
    "sealed-cell-as-text": _cell_as_text,
    "tek-cell-as-number": _tek_cell_as_number,
    "key-truncated": _key_truncated,
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damage_past_the_integrity_check_is_one_line(tmp_path: Path, damage: str) -> None:
    """AGENT-20: a store damaged where SQLite's check at open does not look gives one line
    on stderr and a non-zero exit (or, for a single unreadable record, a working status),
    never a traceback; the files are left in place."""
    data = tmp_path / "agent"
    agent = Agent.open(AgentConfig(data_dir=data, radio="sim"), now=T0, radio=SimRadio())
    agent.tick(T0)
    agent.close()
    DAMAGES[damage](data)
    done = _agent_status(data, tmp_path)
    assert "Traceback" not in done.stderr, done.stderr
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("phe-trace: error:"), done.stderr
    assert (data / DB_NAME).exists()
