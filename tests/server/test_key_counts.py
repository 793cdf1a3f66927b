"""The key server's own differentially private count of real keys per day (SPEC AGG-14, AGG-38)."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from phe_trace.clock import SettableClock
from phe_trace.server import ServerContext, create_app, run_export
from phe_trace.server import key_counts as key_counts_module
from phe_trace.server.storage.tables import export_padding, key_count_releases
from phe_trace.serving import LoopbackServer

from .conftest import make_settings
from .helpers import NOW
from .test_exporter import _insert

DAY = 86_400
D = int(NOW) // DAY


@pytest.fixture
def padded_ctx(tmp_path: Path, database_url: str, clock: SettableClock):
    settings = make_settings(tmp_path, database_url, export_min_records=60, export_padding_range=5)
    context = ServerContext.open(settings, clock=clock)
    yield context
    context.close()


def test_each_ended_day_is_released_once_padding_excluded(
    padded_ctx: ServerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AGG-14, AGG-38: noise off, each value is the day's real keys; days released once."""
    monkeypatch.setattr(key_counts_module, "dp_key_count", lambda n, eps, s: n)
    _insert(padded_ctx, 7, D * DAY + 3600)
    _insert(padded_ctx, 5, (D + 2) * DAY + 7200)  # day D + 1 has no key at all
    first = run_export(padded_ctx, (D + 1) * DAY + 600)
    assert first.key_counts_released == 1
    run_export(padded_ctx, (D + 3) * DAY + 600)
    with padded_ctx.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(export_padding)).scalar() > 0
        rows = conn.execute(
            sa.select(key_count_releases.c.day, key_count_releases.c.value).order_by(
                key_count_releases.c.day
            )
        ).all()
    assert [tuple(r) for r in rows] == [(D, 7), (D + 1, 0), (D + 2, 5)]
    again = run_export(padded_ctx, (D + 3) * DAY + 1200)
    assert again.key_counts_released == 0


def test_released_values_carry_noise_and_an_interval(padded_ctx: ServerContext) -> None:
    """AGG-38, AGG-39: noisy values, served with ε, noise scale and a 95 % interval."""
    for k in range(10):
        _insert(padded_ctx, 3, (D - 12 + k) * DAY + 60)
    run_export(padded_ctx, (D - 1) * DAY + 600)
    with LoopbackServer(create_app(context=padded_ctx)) as live:
        body = httpx.get(f"{live.url}/v1/statistics/key-counts").json()
    releases = body["releases"]
    assert [r["day"] for r in releases] == list(range(D - 12, D - 1))  # up to yesterday
    # sensitivity 14, ε 0.5: α = e^(-1/28); P(|X| > h) = 2α^(h+1)/(1+α) ≤ 0.05 → h = 84
    alpha = math.exp(-0.5 / 14)
    h = next(h for h in range(1000) if 2 * alpha ** (h + 1) / (1 + alpha) <= 0.05)
    for r in releases:
        assert (r["epsilon"], r["sensitivity"]) == (0.5, 14)
        assert r["interval_95"] == [max(0, r["value"] - h), r["value"] + h]
        assert r["noise_std"] == pytest.approx(math.sqrt(2 * alpha) / (1 - alpha), abs=0.01)
    assert len({r["value"] for r in releases}) > 1  # ten days of 3 keys: the noise shows
    assert "padding keys are not counted" in body["mechanism"]
