"""Engine creation and Alembic migrations of the key server, on :mod:`phe_trace.storage`.

The key server keeps its own Alembic version table (:data:`VERSION_TABLE`), so another
service (the verification service) can keep its tables and its migration history in the
same database.
"""

from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from phe_trace import storage
from phe_trace.storage import is_transient

__all__ = [
    "MIGRATIONS_DIR",
    "VERSION_TABLE",
    "WAL_AUTOCHECKPOINT_PAGES",
    "WalCheckpointer",
    "create_engine_for",
    "is_transient",
    "migrate",
]

#: The Alembic version table of the key server.
VERSION_TABLE = "alembic_version_keyserver"
#: Directory of the key server's Alembic scripts.
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


#: WAL pages after which a committing SQLite connection checkpoints by itself (SQLite's
#: default is 1,000). A safety net only: a running key server checkpoints in the
#: background (:class:`WalCheckpointer`) long before, so that no publish waits for the
#: checkpoint's copy and fsyncs.
WAL_AUTOCHECKPOINT_PAGES = 20_000


class WalCheckpointer:
    """Checkpoints a SQLite database's WAL every ``interval`` seconds in a thread of its own.

    ``PRAGMA wal_checkpoint(PASSIVE)`` copies committed pages into the database file
    without waiting for readers or writers, so writers never run the checkpoint (and its
    fsyncs) themselves. Durability is unchanged: a commit is in the WAL before it is
    acknowledged, checkpointed or not. A failed checkpoint is tried again next time.
    """

    def __init__(self, engine: Engine, interval: float = 0.5) -> None:
        self._engine = engine
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self.checkpoints = 0

    def start(self) -> None:
        """Start the background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread (after a checkpoint under way)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def checkpoint(self) -> None:
        """One passive checkpoint now."""
        with self._engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").all()
        self.checkpoints += 1

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.checkpoint()
            except sa.exc.DBAPIError:
                continue  # busy or unavailable: the next tick tries again


def create_engine_for(url: str, *, pool_size: int = 10) -> Engine:
    """The key server's engine for ``url`` (:func:`phe_trace.storage.create_engine`).

    SQLite: synchronous ``NORMAL`` (a commit is in the WAL before it is acknowledged and
    survives a killed process; the WAL is synced at each checkpoint) and the
    :data:`WAL_AUTOCHECKPOINT_PAGES` safety net.
    """
    return storage.create_engine(
        url,
        pool_size=pool_size,
        synchronous="NORMAL",
        wal_autocheckpoint=WAL_AUTOCHECKPOINT_PAGES,
    )


def migrate(engine: Engine, revision: str = "heads") -> None:
    """Bring the key server's tables up to ``revision`` (idempotent)."""
    storage.migrate(engine, MIGRATIONS_DIR, revision)
