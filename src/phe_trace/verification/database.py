"""Engine creation, Alembic migrations and the retry rule of the verification service's
storage, on :mod:`phe_trace.storage`.

A transient database failure (a dropped connection, a restarting server, SQLite busy) is
retried once by :func:`retry_once`, in a fresh transaction; a second one becomes
:class:`~.errors.VerificationDatabaseUnavailableError` (503 ``unavailable``, SPEC VER-15).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError

from phe_trace import storage
from phe_trace.storage import init_lock, is_transient, normalize_url

from .errors import VerificationDatabaseUnavailableError
from .logs import PENDING, log_event, write_noted

__all__ = [
    "MIGRATIONS_DIR",
    "init_lock",
    "is_transient",
    "log_on_commit",
    "make_engine",
    "migrate",
    "normalize_url",
    "retry_once",
]

T = TypeVar("T")

#: Directory of the service's Alembic environment (inside the package).
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine for ``url`` (SQLite file or PostgreSQL).

    SQLite: synchronous ``FULL`` keeps every committed claim durable across power loss; a
    locked database is waited for 5 s before the one retry.
    """
    return storage.create_engine(url, busy_timeout=5.0, synchronous="FULL")


def retry_once(attempt: Callable[[bool], T]) -> T:
    """:func:`phe_trace.storage.retry_once`: ``attempt(False)``, after a transient failure
    ``attempt(True)``; a second one is logged (``database_unavailable``) and raises
    :class:`VerificationDatabaseUnavailableError`."""
    return storage.retry_once(attempt, _unavailable)


def _unavailable(exc: DBAPIError) -> VerificationDatabaseUnavailableError:
    log_event("database_unavailable", logging.WARNING, exception=type(exc).__name__)
    return VerificationDatabaseUnavailableError(storage.UNAVAILABLE)


def migrate(engine: Engine, revision: str = "heads") -> None:
    """Bring the schema to ``revision`` (default: the newest)."""
    storage.migrate(engine, MIGRATIONS_DIR, revision)


def log_on_commit(engine: Engine) -> None:
    """Write the log events noted in each of ``engine``'s transactions when it commits
    (:func:`phe_trace.verification.logs.note`); drop them when it rolls back."""
    if event.contains(engine, "commit", _write_noted):
        return
    event.listen(engine, "commit", _write_noted)
    event.listen(engine, "rollback", _drop_noted)


def _write_noted(conn: Any) -> None:
    write_noted(conn.info.pop(PENDING, []))


def _drop_noted(conn: Any) -> None:
    # A connection whose backend was lost is invalidated before its rollback; reading
    # its ``info`` then would try to reconnect inside the rollback and fail it. What it
    # noted goes with the lost connection record.
    if conn.invalidated:
        return
    conn.info.pop(PENDING, None)
