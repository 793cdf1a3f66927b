"""Engine creation and Alembic migrations of the gateway (its own version table), on
:mod:`phe_trace.storage`."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from phe_trace import storage

__all__ = ["MIGRATIONS_DIR", "VERSION_TABLE", "create_engine_for", "migrate"]

VERSION_TABLE = "alembic_version_gateway"
#: Directory of the gateway's Alembic scripts.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def create_engine_for(url: str) -> Engine:
    """An engine for ``url``: a SQLite file (WAL) or PostgreSQL (psycopg 3)."""
    return storage.create_engine(url)


def migrate(engine: Engine, revision: str = "heads") -> None:
    """Bring the gateway's tables up to ``revision`` (idempotent)."""
    storage.migrate(engine, MIGRATIONS_DIR, revision)
