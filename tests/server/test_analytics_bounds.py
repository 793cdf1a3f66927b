"""Anonymous analytics uploads are bounded: day window, retention, upload rate (AGG-34).

A real key server on loopback with a settable clock and a SQLite file (PostgreSQL too
when ``PHE_TRACE_TEST_DATABASE_URL`` is set).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from phe_trace.clock import SettableClock
from phe_trace.server import ServerContext, create_app
from phe_trace.serving import LoopbackServer

from .conftest import make_settings
from .helpers import NOW

TODAY = int(NOW // 86400)
BOX = base64.b64encode(b"B" * 100).decode()


def _report(day: int, metric: str = "notified") -> dict[str, object]:
    return {"metric": metric, "day": day, "leader_share": BOX, "helper_share": BOX}


def _days(ctx: ServerContext) -> list[int]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT day FROM analytics_sealed_reports ORDER BY day"))
        return [int(d) for (d,) in rows]


@pytest.fixture
def live(
    tmp_path: Path, database_url: str
) -> Iterator[tuple[LoopbackServer, ServerContext, SettableClock]]:
    clock = SettableClock(NOW)
    ctx = ServerContext.open(
        make_settings(tmp_path, database_url, analytics_uploads_per_second=1), clock=clock
    )
    try:
        with LoopbackServer(create_app(context=ctx)) as server:
            yield server, ctx, clock
    finally:
        ctx.close()


@pytest.mark.parametrize("day", [TODAY + 1, TODAY - 15, 0, 2**31 - 1])
def test_days_outside_the_window_are_400(
    live: tuple[LoopbackServer, ServerContext, SettableClock], day: int
) -> None:
    """AGG-34: only days from retention_days ago through today are accepted; none stored."""
    server, ctx, _ = live
    r = httpx.post(
        f"{server.url}/v1/analytics/reports", json={"reports": [_report(TODAY), _report(day)]}
    )
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "bad_request" and "reports[1].day" in r.json()["error"]
    assert _days(ctx) == []


def test_window_edges_are_accepted_and_old_days_are_deleted(
    live: tuple[LoopbackServer, ServerContext, SettableClock],
) -> None:
    """AGG-34: the oldest and newest day pass; once past retention their rows go."""
    server, ctx, clock = live
    body = {"reports": [_report(TODAY - 14), _report(TODAY - 13), _report(TODAY)]}
    assert httpx.post(f"{server.url}/v1/analytics/reports", json=body).status_code == 202
    assert _days(ctx) == [TODAY - 14, TODAY - 13, TODAY]
    clock.t += 86400  # the next day: TODAY - 14 is past retention
    later = {"reports": [_report(TODAY + 1)]}
    assert httpx.post(f"{server.url}/v1/analytics/reports", json=later).status_code == 202
    assert _days(ctx) == [TODAY - 13, TODAY, TODAY + 1]


def test_uploads_beyond_the_rate_are_429_and_not_stored(
    live: tuple[LoopbackServer, ServerContext, SettableClock],
) -> None:
    """AGG-34: 1 upload/s with a minute's burst: the 61st at one instant is a 429."""
    server, ctx, clock = live
    body = {"reports": [_report(TODAY)]}
    with httpx.Client() as client:
        statuses = [
            client.post(f"{server.url}/v1/analytics/reports", json=body).status_code
            for _ in range(60)
        ]
        refused = client.post(f"{server.url}/v1/analytics/reports", json=body)
        clock.t += 1
        again = client.post(f"{server.url}/v1/analytics/reports", json=body)
    assert statuses == [202] * 60
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "too_many_requests"
    assert int(refused.headers["Retry-After"]) >= 1
    assert again.status_code == 202
    assert len(_days(ctx)) == 61
