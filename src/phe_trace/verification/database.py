"""Engine creation, Alembic migrations and the retry rule of the verification service's storage.

A transient database failure (a dropped connection, a restarting server, SQLite busy) is
retried once by :func:`retry_once`, in a fresh transaction; a second one becomes
:class:`~.errors.VerificationDatabaseUnavailableError` (503 ``unavailable``, SPEC VER-15).
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

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

#: PostgreSQL advisory-lock id guarding the service's first-start work ("vfinit").
_ADVISORY_LOCK_ID = 0x7666696E6974

#: Directory of the service's Alembic environment (inside the package).
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://") :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    # Write-ahead log: one fsync per commit instead of several, readers never block the
    # writer; synchronous=FULL keeps every committed claim durable across power loss.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine for ``url`` (SQLite file or PostgreSQL)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 5})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a database failure worth one retry: a dropped connection or an
    operational error (server restarting, connection refused, SQLite busy) — never a
    constraint violation or a bad value."""
    if isinstance(exc, IntegrityError) or not isinstance(exc, DBAPIError):
        return False
    return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)


def retry_once(attempt: Callable[[bool], T]) -> T:
    """``attempt(False)``; after a transient failure ``attempt(True)`` once more.

    Each attempt must be one transaction of its own (``engine.begin()``), so the failed
    one was rolled back — unless the failure hit its commit, which may have gone through:
    ``attempt(True)`` is told it is the retry so it can recognise its own first attempt's
    work (a marker written in that transaction) instead of doing it twice. A second
    transient failure raises :class:`VerificationDatabaseUnavailableError`; other errors
    pass through.
    """
    try:
        return attempt(False)
    except DBAPIError as exc:
        if not is_transient(exc):
            raise
    try:
        return attempt(True)
    except DBAPIError as exc:
        if not is_transient(exc):
            raise
        log_event("database_unavailable", logging.WARNING, exception=type(exc).__name__)
        raise VerificationDatabaseUnavailableError(
            "the database is unavailable; retry later"
        ) from None


def alembic_config() -> Config:
    """An Alembic configuration pointing at the package's migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def migrate(engine: Engine, revision: str = "heads") -> None:
    """Bring the schema to ``revision`` (default: the newest)."""
    cfg = alembic_config()
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


@contextmanager
def init_lock(engine: Engine) -> Iterator[None]:
    """Serialize start-up work (migrations, first signing key) across worker processes.

    PostgreSQL: a session advisory lock. SQLite file: ``flock`` on ``<file>.init-lock``.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _ADVISORY_LOCK_ID})
                conn.commit()
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.init-lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


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
    conn.info.pop(PENDING, None)
