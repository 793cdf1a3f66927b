"""The key server while its database is down, on SQLite and PostgreSQL (SPEC PUB-2).

Failures are injected into the server's own engine: the driver's ``OperationalError``
(what a dropped connection or a restarting server raises) in place of statements. A
publish whose write fails also on the retry, and a read that fails outside the retried
write, both answer exactly one 503: ``unavailable`` with ``Retry-After: 2``, padded on
``/v1/publish``, ``{"error", "code"}`` elsewhere, and the ``database_unavailable``
warning. A database error that no retry can help is a 500 that names nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from phe_trace.server import ServerContext
from phe_trace.server.logs import LOGGER_NAME

from .helpers import NOW, Authority, day_keys, publish_body

_EXECUTE_EVENTS = ("do_execute", "do_execute_no_params", "do_executemany")
_UNAVAILABLE = b'{"error":"the database is unavailable; retry later","code":"unavailable"}'


class Failing:
    """Raise the driver's ``error`` (default OperationalError) for statements containing
    ``part`` (on PostgreSQL the certificate marker's INSERT may open a WITH)."""

    def __init__(self, engine: sa.Engine, part: str = "", error: str = "OperationalError"):
        self.engine, self.part = engine, part
        self.error = getattr(engine.dialect.loaded_dbapi, error)
        self.raised = 0

    def _check(self, _cursor: Any, statement: str, *_: Any) -> bool:
        if self.part in statement:
            self.raised += 1
            raise self.error("injected failure: server closed the connection unexpectedly")
        return False

    def __enter__(self) -> Failing:
        for name in _EXECUTE_EVENTS:
            event.listen(self.engine, name, self._check)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in _EXECUTE_EVENTS:
            event.remove(self.engine, name, self._check)


class _Events(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[str, int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.getMessage(), record.levelno))


@pytest.fixture
def events() -> Iterator[_Events]:
    handler = _Events()
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _headers(response: httpx.Response) -> list[tuple[str, str]]:
    """The response's headers in order, without those of the HTTP server itself."""
    return [(k, v) for k, v in response.headers.items() if k not in ("date", "server")]


def test_a_publish_whose_write_fails_twice_answers_one_padded_503(
    client: httpx.Client, ctx: ServerContext, authority: Authority, events: _Events
) -> None:
    """The certificate marker's INSERT fails on the attempt and its retry: 503
    ``unavailable`` with ``Retry-After: 2`` in the padded publish answer, logged once as
    ``database_unavailable`` (PUB-2, PUB-22)."""
    body = publish_body(authority, day_keys(NOW, 2), NOW)
    with Failing(ctx.engine, "INSERT INTO ks_used_certificates") as failing:
        response = client.post("/v1/publish", json=body)
    assert failing.raised == 2
    assert response.status_code == 503, response.text
    assert _headers(response) == [
        ("retry-after", "2"),
        ("content-length", str(len(response.content))),
        ("content-type", "application/json"),
    ]
    answer = response.json()
    padding = answer.pop("padding")
    assert 1024 <= len(padding) <= 2048
    assert answer == {
        "revisionToken": "",
        "insertedExposures": 0,
        "error": "the database is unavailable; retry later",
        "code": "unavailable",
        "warnings": [],
    }
    assert list(response.json()) == [
        "revisionToken", "insertedExposures", "error", "code", "padding", "warnings",
    ]  # fmt: skip
    assert events.seen.count(("database_unavailable", logging.WARNING)) == 1
    assert ("internal_error", logging.ERROR) not in events.seen


def test_a_read_outside_the_retried_write_answers_the_same_503(
    client: httpx.Client, ctx: ServerContext, events: _Events
) -> None:
    """A route whose read meets a dropped connection (no retry of its own) answers the
    bytes of every 503 ``unavailable``: ``{"error", "code"}``, ``Retry-After: 2``."""
    with Failing(ctx.engine) as failing:
        response = client.get("/v1/statistics/key-counts")
    assert failing.raised >= 1
    assert response.status_code == 503, response.text
    assert response.content == _UNAVAILABLE
    assert _headers(response) == [
        ("retry-after", "2"),
        ("content-length", str(len(_UNAVAILABLE))),
        ("content-type", "application/json"),
    ]
    assert events.seen.count(("database_unavailable", logging.WARNING)) == 1


def test_a_database_error_no_retry_helps_is_a_500_that_names_nothing(
    client: httpx.Client, ctx: ServerContext, events: _Events
) -> None:
    """A constraint the database enforces is no outage: 500 ``internal_error``, no
    ``Retry-After``, logged as ``internal_error`` (not ``database_unavailable``)."""
    with Failing(ctx.engine, error="IntegrityError"):
        response = client.get("/v1/statistics/key-counts")
    assert response.status_code == 500, response.text
    assert response.content == b'{"error":"internal error","code":"internal_error"}'
    assert "retry-after" not in response.headers
    assert ("internal_error", logging.ERROR) in events.seen
    assert ("database_unavailable", logging.WARNING) not in events.seen
