"""The device API while PostgreSQL drops its connection mid-claim (SPEC VER-2).

The backend of the connection about to claim a code is terminated with
``pg_terminate_backend`` from another connection. The answer is 503 ``unavailable`` with
``Retry-After`` — never a 500 — and the claim was rolled back, so the app's retry works.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from .conftest import Live, start_live


class Dropper:
    def __init__(self, admin_url: str, prefix: str) -> None:
        self.admin_url, self.prefix = admin_url, prefix
        self.budget = 0

    def __call__(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if self.budget <= 0 or not statement.startswith(self.prefix):
            return
        import psycopg

        self.budget -= 1
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (cursor.connection.info.backend_pid,))


@pytest.fixture
def live_pg(tmp_path: Path, postgres_url: str) -> Iterator[Live]:
    running, handle = start_live(tmp_path, postgres_url)
    try:
        yield handle
    finally:
        running.__exit__(None, None, None)
        handle.service.close()


def test_dropped_connection_is_503_and_the_code_stays_usable(live_pg: Live) -> None:
    live = live_pg
    day = live.clock.now().date()
    code = live.service.issue_code(live.worker, "confirmed", day, day).code
    admin = os.environ["PHE_TRACE_TEST_DATABASE_URL"].replace("+psycopg", "")
    dropper = Dropper(admin, "UPDATE vf_codes")
    event.listen(live.service.engine, "before_cursor_execute", dropper)
    with httpx.Client(base_url=live.url, headers={"X-API-Key": live.api_key}) as api:
        dropper.budget = 1
        failed = api.post("/api/verify", json={"code": code})
        assert dropper.budget == 0
        assert failed.status_code == 503, failed.text
        assert failed.json()["errorCode"] == "unavailable"
        assert int(failed.headers["Retry-After"]) >= 1
        retried = api.post("/api/verify", json={"code": code})
        assert retried.status_code == 200, retried.text
        assert retried.json()["testtype"] == "confirmed"
