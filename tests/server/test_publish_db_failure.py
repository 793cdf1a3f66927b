"""Publish while PostgreSQL drops the server's connection mid-transaction (SPEC PUB-2, PUB-7).

A real uvicorn key server on a fresh PostgreSQL database. When the certificate marker is
about to be written, the backend serving that very connection is terminated with
``pg_terminate_backend`` from another connection — the failure a database restart or
failover causes. One drop is retried and the publish succeeds, stored once; drops on
every attempt answer 503 ``unavailable`` with ``Retry-After`` and store nothing, and the
certificate is still good afterwards. Never a 500.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from phe_trace.clock import SettableClock
from phe_trace.server import ServerContext, create_app, register_health_authority
from phe_trace.server.storage.tables import exposures, used_certificates
from phe_trace.serving import LoopbackServer

from .conftest import make_settings
from .helpers import NOW, Authority, day_keys, publish_body


class Dropper:
    """Terminates the backend of the connection about to write a certificate marker."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.budget = 0
        self.dropped = 0

    def __call__(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        marker = "INSERT INTO ks_used_certificates"  # alone, or first in a WITH
        if self.budget <= 0 or marker not in statement:
            return
        import psycopg

        self.budget -= 1
        pid = cursor.connection.info.backend_pid
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        self.dropped += 1


@pytest.fixture
def dropping(
    tmp_path: Path, postgres_url: str, authority: Authority
) -> Iterator[tuple[httpx.Client, ServerContext, Dropper]]:
    ctx = ServerContext.open(make_settings(tmp_path, postgres_url), clock=SettableClock(NOW))
    register_health_authority(
        ctx.engine,
        issuer=authority.issuer,
        audience=authority.audience,
        name="Test HA",
        public_keys={authority.kid: authority.public_pem},
    )
    admin = os.environ["PHE_TRACE_TEST_DATABASE_URL"].replace("+psycopg", "")
    dropper = Dropper(admin)
    event.listen(ctx.engine, "before_cursor_execute", dropper)
    try:
        with (
            LoopbackServer(create_app(context=ctx)) as live,
            httpx.Client(base_url=live.url, timeout=30) as client,
        ):
            yield client, ctx, dropper
    finally:
        ctx.close()


def _counts(ctx: ServerContext) -> tuple[int, int]:
    with ctx.engine.connect() as conn:
        keys = conn.execute(sa.select(sa.func.count()).select_from(exposures)).scalar()
        marks = conn.execute(sa.select(sa.func.count()).select_from(used_certificates)).scalar()
    return int(keys or 0), int(marks or 0)


def test_one_dropped_connection_is_retried(
    dropping: tuple[httpx.Client, ServerContext, Dropper], authority: Authority
) -> None:
    """The write is retried on a fresh connection: 200, every key stored once (PUB-7)."""
    client, ctx, dropper = dropping
    keys = day_keys(NOW, 5)
    dropper.budget = 1
    response = client.post("/v1/publish", json=publish_body(authority, keys, NOW))
    assert dropper.dropped == 1
    assert response.status_code == 200, response.text
    assert response.json()["insertedExposures"] == 5
    assert _counts(ctx) == (5, 1)
    with ctx.engine.connect() as conn:
        stored = {bytes(r.key_data) for r in conn.execute(sa.select(exposures.c.key_data))}
    assert stored == {base64.b64decode(k["key"]) for k in keys}


def test_a_database_that_stays_away_is_503_not_500(
    dropping: tuple[httpx.Client, ServerContext, Dropper], authority: Authority
) -> None:
    """Drops on the attempt and its retry: 503 ``unavailable``, Retry-After, nothing kept."""
    client, ctx, dropper = dropping
    body = publish_body(authority, day_keys(NOW, 3), NOW)
    dropper.budget = 2
    response = client.post("/v1/publish", json=body)
    assert dropper.dropped == 2
    assert response.status_code == 503, response.text
    answer = response.json()
    assert answer["code"] == "unavailable"
    assert set(answer) >= {"revisionToken", "insertedExposures", "error", "padding"}
    assert int(response.headers["Retry-After"]) >= 1
    assert _counts(ctx) == (0, 0)
    again = client.post("/v1/publish", json=body)  # the certificate was not used up
    assert again.status_code == 200, again.text
    assert _counts(ctx) == (3, 1)
