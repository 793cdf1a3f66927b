"""Shared fixtures: real databases (SQLite always, PostgreSQL where configured).

``database_url`` is parametrized over ``sqlite`` and ``postgresql``. The PostgreSQL case
runs when ``PHE_TRACE_TEST_DATABASE_URL`` is set (CI sets it) and is skipped otherwise,
saying why. Each PostgreSQL test gets a fresh database of its own (created from the
configured server, dropped afterwards), so tests may run side by side.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES_ENV = "PHE_TRACE_TEST_DATABASE_URL"

#: The loggers a role's set-up configures (``phe_trace.logs.configure_logging``).
_LOGGERS = (
    *(
        f"phe_trace{suffix}"
        for suffix in ("", ".server", ".verification", ".aggregator", ".gateway", ".agent")
    ),
    "uvicorn",
    "uvicorn.access",
)


@pytest.fixture(autouse=True)
def _logging_as_before() -> Iterator[None]:
    """Each test leaves logging as it found it: the JSON handler and levels one test's
    app configured do not write into a later test's captured output."""
    saved = [
        (log, log.level, list(log.handlers), log.propagate)
        for log in map(logging.getLogger, _LOGGERS)
    ]
    yield
    for log, level, handlers, propagate in saved:
        log.setLevel(level)
        log.handlers[:] = handlers
        log.propagate = propagate


def _admin_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A SQLAlchemy URL of a fresh, empty PostgreSQL database (skipped when not configured)."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set: no PostgreSQL server to test against")
    import psycopg

    name = f"phe_trace_test_{secrets.token_hex(6)}"
    admin = _admin_url(base)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    head, _, _ = admin.rpartition("/")
    url = f"{head}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLAlchemy URL of a new SQLite file in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'phe-trace.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Run a storage test on SQLite and, where configured, on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))
