"""The storage foundation every role's database stands on.

One engine factory (:func:`create_engine`: URL normalisation, SQLite pragmas, pool
settings), one rule of which database failures are worth a retry (:func:`is_transient`,
:func:`retry_once`), one Alembic runner (:func:`migrate`, and :func:`run_environment` for
each role's ``env.py``) and one lock that serializes start-up work across worker processes
(:func:`init_lock`).

Each role keeps its own tables, its own Alembic scripts and its own version table
(``alembic_version_keyserver``, ``alembic_version_verification``,
``alembic_version_aggregator``, ``alembic_version_gateway``), so several roles can share
one database: ``PHE_TRACE_DATABASE_URL`` puts every role of a process in it unless a
role's own URL setting says otherwise.

All times the roles store are unix seconds (integers), so SQLite and PostgreSQL behave
alike.
"""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

__all__ = [
    "UNAVAILABLE",
    "create_engine",
    "init_lock",
    "is_transient",
    "migrate",
    "normalize_url",
    "retry_once",
    "run_environment",
]

T = TypeVar("T")

#: What a role's 503 says when the database failed also on the retry.
UNAVAILABLE = "the database is unavailable; retry later"

#: PostgreSQL advisory-lock id guarding start-up work (migrations, first keys): "vfinit".
_ADVISORY_LOCK_ID = 0x7666696E6974


def normalize_url(url: str) -> str:
    """``url`` with plain ``postgresql://`` / ``postgres://`` on psycopg 3."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def _sqlite_pragmas(
    busy_timeout: float, synchronous: str, wal_autocheckpoint: int | None
) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # Write-ahead log: readers never block the writer, one sync per commit instead of
        # the rollback journal's several.
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives power loss; NORMAL: it survives a killed process, and
        # the WAL is synced at each checkpoint.
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        if wal_autocheckpoint is not None:
            cursor.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    return on_connect


def create_engine(
    url: str,
    *,
    pool_size: int | None = None,
    busy_timeout: float = 30.0,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    wal_autocheckpoint: int | None = None,
) -> Engine:
    """A SQLAlchemy engine for ``url``: a SQLite file or PostgreSQL (psycopg 3).

    SQLite: write-ahead log, foreign keys on, ``busy_timeout`` seconds of waiting for a
    lock, ``synchronous`` durability, and a WAL auto-checkpoint after
    ``wal_autocheckpoint`` pages when given (SQLite's default otherwise). PostgreSQL:
    connections checked before use (a restarted server is reconnected) and the most
    recently returned one reused first, so a quiet service works on one connection and
    the rest may time out on the server's side. ``pool_size``, when given, bounds the
    pool (PostgreSQL may open as many again beyond it).
    """
    url = normalize_url(url)
    pool: dict[str, Any] = {} if pool_size is None else {"pool_size": pool_size}
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, connect_args={"timeout": busy_timeout, "check_same_thread": False}, **pool
        )
        sa.event.listen(
            engine, "connect", _sqlite_pragmas(busy_timeout, synchronous, wal_autocheckpoint)
        )
        return engine
    if pool_size is not None:
        pool["max_overflow"] = pool_size
    return sa.create_engine(url, pool_pre_ping=True, pool_use_lifo=True, **pool)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a database failure worth one retry: a dropped connection or an
    operational error (server restarting, connection refused, SQLite busy) — never a
    constraint violation or a bad value."""
    if isinstance(exc, IntegrityError) or not isinstance(exc, DBAPIError):
        return False
    return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)


def retry_once(attempt: Callable[[bool], T], unavailable: Callable[[DBAPIError], Exception]) -> T:
    """``attempt(False)``; after a transient failure ``attempt(True)`` once more.

    Each attempt must be one transaction of its own (``engine.begin()``), so the failed
    one was rolled back — unless the failure hit its commit, which may have gone through:
    ``attempt(True)`` is told it is the retry so it can recognise its own first attempt's
    work (a marker written in that transaction) instead of doing it twice. A second
    transient failure raises ``unavailable(failure)`` (the role's 503 error, e.g. with
    :data:`UNAVAILABLE` as its message); other errors pass through.
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
        raise unavailable(exc) from None


def migrate(engine: Engine, script_location: Path, revision: str = "heads") -> None:
    """Bring one role's tables to ``revision`` (default: the newest) with the Alembic
    scripts in ``script_location``, in one transaction (idempotent).

    The role's ``env.py`` calls :func:`run_environment` on the connection handed over.
    """
    config = Config()
    config.set_main_option("script_location", str(script_location))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def run_environment(
    target_metadata: sa.MetaData, version_table: str, table_prefix: str | None = None
) -> None:
    """The body of a role's Alembic ``env.py``: run its migrations with its own version
    table on the connection :func:`migrate` handed over (or, from the ``alembic`` command,
    on ``sqlalchemy.url``). With ``table_prefix`` only tables so named are the role's (for
    autogenerate in a database shared with other roles)."""
    from alembic import context

    def include_name(name: str | None, type_: str, _parents: Any) -> bool:
        if type_ == "table" and table_prefix is not None:
            return bool(name and name.startswith(table_prefix))
        return True

    def run(connection: sa.Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table=version_table,
            include_name=include_name,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()

    connection = context.config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url given")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            run(conn)
    finally:
        engine.dispose()


@contextmanager
def init_lock(engine: Engine) -> Iterator[None]:
    """Serialize start-up work (migrations, first signing keys) across worker processes.

    PostgreSQL: a session advisory lock. SQLite file: ``flock`` on ``<file>.init-lock``.
    Not re-entrant: a holder must not take it again.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": _ADVISORY_LOCK_ID})
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
