"""SQLite: committed keys reach the database file in the background (WAL checkpoints).

A publish commits into the write-ahead log; copying the log into the database file (a
checkpoint, with its fsyncs) is the key server's background work, not the publish's.
Read here straight from the database file, without the log (SQLite's ``immutable``
open), so only checkpointed rows are seen.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from phe_trace.server import ServerContext
from phe_trace.server.storage import queries

from .conftest import make_settings


def _rows(count: int) -> list[dict[str, object]]:
    return [
        {
            "key_data": i.to_bytes(16, "big"),
            "region": "ZZ",
            "traveler": False,
            "rolling_start_interval_number": 2_700_000,
            "rolling_period": 144,
            "transmission_risk_level": 2,
            "report_type": 1,
            "days_since_onset_of_symptoms": 0,
            "created_at": 1_620_000_000,
            "health_authority_id": None,
        }
        for i in range(count)
    ]


def _rows_in_database_file(path: Path) -> int:
    """Rows of ks_exposures in the database file itself (0 while even the table is not)."""
    db = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM ks_exposures").fetchone()[0])
    except sqlite3.OperationalError:  # no such table: the schema is still in the WAL only
        return 0
    finally:
        db.close()


def _checkpoint_threads() -> int:
    return sum(t.name == "wal-checkpoint" for t in threading.enumerate())


def test_committed_rows_reach_the_database_file_without_a_writer_checkpoint(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, None)
    before = _checkpoint_threads()
    ctx = ServerContext.open(settings)
    try:
        assert _checkpoint_threads() == before + 1
        path = Path(settings.effective_database_url.removeprefix("sqlite:///"))
        with ctx.engine.begin() as conn:
            assert len(queries.insert_new_exposures(conn, _rows(50))) == 50
        deadline = time.monotonic() + 20
        while _rows_in_database_file(path) != 50:
            if time.monotonic() > deadline:
                pytest.fail("committed rows never reached the database file")
            time.sleep(0.05)
    finally:
        ctx.close()
    assert _checkpoint_threads() == before


def test_no_checkpoint_thread_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    ctx = ServerContext.open(make_settings(tmp_path, postgres_url))
    try:
        assert ctx.checkpointer is None
    finally:
        ctx.close()
