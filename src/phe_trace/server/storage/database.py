"""Engine creation and Alembic migrations of the key server.

The key server keeps its own Alembic version table (:data:`VERSION_TABLE`), so another
service (the verification service) can keep its tables and its migration history in the
same database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Engine

__all__ = ["VERSION_TABLE", "create_engine_for", "is_transient", "migrate"]

#: The Alembic version table of the key server.
VERSION_TABLE = "alembic_version_keyserver"
_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


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
