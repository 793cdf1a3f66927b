"""Engine creation and Alembic migrations of the key server.

The key server keeps its own Alembic version table (:data:`VERSION_TABLE`), so another
service (the verification service) can keep its tables and its migration history in the
same database.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Engine

__all__ = [
    "VERSION_TABLE",
    "WAL_AUTOCHECKPOINT_PAGES",
    "WalCheckpointer",
    "create_engine_for",
    "is_transient",
    "migrate",
]

#: The Alembic version table of the key server.
VERSION_TABLE = "alembic_version_keyserver"
_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


#: WAL pages after which a committing SQLite connection checkpoints by itself (SQLite's
#: default is 1,000). A safety net only: a running key server checkpoints in the
#: background (:class:`WalCheckpointer`) long before, so that no publish waits for the
#: checkpoint's copy and fsyncs.
WAL_AUTOCHECKPOINT_PAGES = 20_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # a commit is in the WAL file before it is acknowledged (it survives a killed process);
    # the WAL is synced to disk at each checkpoint
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


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


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a database failure worth one retry: a dropped connection or an
    operational error (server restarting, connection refused, SQLite busy) — never a
    constraint violation or a bad value."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)


def create_engine_for(url: str, *, pool_size: int = 10) -> Engine:
    """A SQLAlchemy engine for ``url``: SQLite (WAL, busy timeout) or PostgreSQL (psycopg 3)."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=pool_size
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration bound to ``engine`` (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the key server's tables up to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(engine), revision)
