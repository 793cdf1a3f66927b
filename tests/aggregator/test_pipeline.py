"""The whole aggregate-statistics pipeline over real HTTP (SPEC AGG-15 … AGG-24).

Devices shard and seal their daily metrics and upload them to the ingestion router (on
its own uvicorn server with a SQLite file); a helper aggregator runs on another uvicorn
server with its own database; the leader pulls, prepares with the helper over HTTP,
aggregates and releases with noise. Expected values are the devices' plain counts.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from nacl.public import PrivateKey

from phe_trace.aggregator import (
    Aggregator,
    AggregatorConfigError,
    AggregatorSettings,
    BatchTooSmall,
    create_app,
)
from phe_trace.analytics.dp import noise_std
from phe_trace.analytics.metrics import METRICS, DailyObservation, encode_daily
from phe_trace.analytics.reports import daily_reports, make_report, upload_body
from phe_trace.server.analytics_ingest import IngestStore
from phe_trace.server.routers import analytics_ingest
from phe_trace.server.storage import migrate
from phe_trace.serving import serve

TODAY = int(time.time() // 86400)
TOKEN = "peer-token-0123456789abcdef"


@dataclass
class World:
    ingest_url: str
    helper_url: str
    leader: Aggregator
    helper: Aggregator
    ingest_engine: sa.Engine

    def upload(self, obs: list[DailyObservation], day: int = TODAY) -> None:
        keys = (self.leader.public_key(), self.helper.public_key())
        with httpx.Client() as client:
            for o in obs:
                body = upload_body(daily_reports(o, day, *keys))
                resp = client.post(f"{self.ingest_url}/v1/analytics/reports", json=body)
                assert resp.status_code == 202


def _settings(
    role: str, tmp: Path, helper_url: str | None, ingest_url: str, min_batch: int
) -> AggregatorSettings:
    return AggregatorSettings(
        role=role,  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp / f'{role}.sqlite3'}",
        private_key=bytes(PrivateKey.generate()).hex(),  # type: ignore[arg-type]
        verify_key=bytes(range(32)).hex(),  # type: ignore[arg-type]
        peer_token=TOKEN,  # type: ignore[arg-type]
        helper_url=helper_url,
        ingest_url=ingest_url,
        min_batch_size=min_batch,
    )


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    """Leader on a SQLite file; helper on ``database_url`` (SQLite, and PostgreSQL in CI)."""
    ingest_app = FastAPI()
    ingest_app.include_router(analytics_ingest.router)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'keyserver.sqlite3'}")
    migrate(engine)  # the key server's tables, the sealed reports' among them
    ingest_app.state.analytics_ingest = IngestStore(engine)
    with serve(ingest_app) as ingest_url:
        helper_settings = _settings("helper", tmp_path, None, ingest_url, 40)
        helper_settings.database_url = database_url
        helper = Aggregator(helper_settings)
        with serve(create_app(helper)) as helper_url:
            leader = Aggregator(_settings("leader", tmp_path, helper_url, ingest_url, 40))
            yield World(ingest_url, helper_url, leader, helper, engine)


def _population(n: int) -> list[DailyObservation]:
    out = []
    for i in range(n):
        notified = i % 5 == 0
        out.append(
            DailyObservation(
                notified=notified,
                max_risk_level=(i % 8) if i % 3 else 0,
                days_exposure_to_notification=(i % 14) if notified else None,
                reported_positive=i % 17 == 0,
            )
        )
    return out


def _truth(pop: list[DailyObservation], metric: str) -> list[int]:
    values = [encode_daily(o)[metric] for o in pop]
    length = METRICS[metric].length
    if length == 1:
        return [sum(values)]
    return [values.count(b) for b in range(length)]


def test_released_aggregates_match_the_devices(world: World) -> None:
    """AGG-21, AGG-24: prepared over HTTP, released within the noise, published once."""
    pop = _population(60)
    world.upload(pop)
    bound = 8 * noise_std(1.0)  # 8 σ of the two-draw noise
    for metric in METRICS:
        release = world.leader.collect(TODAY, metric)
        assert release.report_count == 60
        assert release.epsilon == 1.0
        for got, want in zip(release.values, _truth(pop, metric), strict=True):
            assert abs(got - want) <= bound
    # The leader publishes over HTTP; collecting again returns the same release.
    with serve(create_app(world.leader)) as leader_url:
        published = httpx.get(f"{leader_url}/v1/aggregates", params={"day": TODAY}).json()
    assert {a["metric"] for a in published["aggregates"]} == set(METRICS)
    again = world.leader.collect(TODAY, "notified")
    assert again.values == next(
        a["values"] for a in published["aggregates"] if a["metric"] == "notified"
    )


def test_a_noisy_total_below_zero_is_released_negative(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AGG-24: with each aggregator's draw fixed at −3 per value, every released value is the
    devices' count − 6 — negative for the empty buckets, read from the field as below zero."""
    from phe_trace.aggregator import service

    monkeypatch.setattr(service, "laplace_noise", lambda length, epsilon: [-3] * length)
    pop = _population(45)
    world.upload(pop)
    release = world.leader.collect(TODAY, "days_to_notification")
    want = _truth(pop, "days_to_notification")
    assert 0 in want
    assert release.values == [v - 6 for v in want]
    assert min(release.values) == -6


def test_below_min_batch_nothing_is_released(world: World) -> None:
    """AGG-12: 39 devices, minimum 40 — the leader releases nothing, the helper refuses."""
    world.upload(_population(39))
    with pytest.raises(BatchTooSmall):
        world.leader.collect(TODAY, "notified")
    assert world.leader.releases(TODAY) == []
    ids = [f"{i:032x}" for i in range(39)]
    resp = httpx.post(
        f"{world.helper_url}/v1/aggregator/aggregate_share",
        json={"day": TODAY, "metric": "notified", "report_ids": ids},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert resp.status_code == 409
    assert resp.json()["code"] == "batch_too_small"


def test_dishonest_and_replayed_reports_are_excluded(world: World) -> None:
    """AGG-6, AGG-20: a forged box, a tampered share and a replayed nonce never count."""
    pop = _population(45)
    world.upload(pop)
    keys = (world.leader.public_key(), world.helper.public_key())
    # A replay: the same report (same nonce) uploaded twice.
    report = make_report("notified", 1, TODAY, *keys, nonce=bytes(16))
    # An out-of-range value: the client proves the vector [2].
    from phe_trace.analytics import prio3 as p3

    vdaf = p3.prio3_count()  # its own instance: the metric's shared one stays honest
    vdaf.flp.valid.encode = lambda _m: [2]  # type: ignore[method-assign]
    original = p3.prio3_count
    METRICS["notified"] = METRICS["notified"].__class__("notified", 1, 1, lambda: vdaf)
    try:
        cheat = make_report("notified", 0, TODAY, *keys)
    finally:
        METRICS["notified"] = METRICS["notified"].__class__("notified", 1, 1, original)
    rows = [(TODAY, "notified", report.leader_share, report.helper_share)] * 2
    rows.append((TODAY, "notified", cheat.leader_share, cheat.helper_share))
    rows.append((TODAY, "notified", os.urandom(120), os.urandom(120)))  # garbage boxes
    IngestStore(world.ingest_engine).add(rows)
    release = world.leader.collect(TODAY, "notified")
    assert release.report_count == 46  # 45 devices + one copy of the replayed report
    assert abs(release.values[0] - (_truth(pop, "notified")[0] + 1)) <= 8 * noise_std(1.0)


def test_helper_answers_only_the_leader_and_once(world: World) -> None:
    """AGG-22: peer token required; the aggregate share leaves once, for accepted ids only."""
    world.upload(_population(40))
    body: dict[str, Any] = {"day": TODAY, "metric": "notified", "items": []}
    url = f"{world.helper_url}/v1/aggregator/prepare"
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    bad = httpx.post(
        url, json={"day": -1, "metric": "x"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert bad.status_code == 400 and bad.json()["code"] == "bad_request"
    world.leader.collect(TODAY, "notified")
    accepted = [f"{i:032x}" for i in range(40)]
    second = httpx.post(
        f"{world.helper_url}/v1/aggregator/aggregate_share",
        json={"day": TODAY, "metric": "notified", "report_ids": accepted},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert second.status_code == 409  # unknown ids, and the share already left once


def test_ingest_stores_only_day_metric_and_boxes(world: World) -> None:
    """AGG-17: the key server's table has no column for an address, a time or a device."""
    world.upload(_population(1))
    cols = {
        c["name"] for c in sa.inspect(world.ingest_engine).get_columns("analytics_sealed_reports")
    }
    assert cols == {"seq", "report_id", "day", "metric", "leader_share", "helper_share"}
    r = httpx.post(
        f"{world.ingest_url}/v1/analytics/reports",
        json={
            "reports": [
                {
                    "metric": "notified",
                    "day": TODAY - 30,
                    "leader_share": "AAAA",
                    "helper_share": "AAAA",
                }
            ]
        },
    )
    assert r.status_code == 422  # this bare app keeps FastAPI's validation status


def test_settings_report_every_problem() -> None:
    """AGG-19: every settings problem is named at once."""
    with pytest.raises(AggregatorConfigError) as info:
        AggregatorSettings(role="leader", peer_token="changeme").check()  # type: ignore[arg-type]
    message = str(info.value)
    for name in ("private_key", "verify_key", "peer_token", "helper_url"):
        assert name in message


def test_each_aggregate_share_carries_its_own_noise(world: World) -> None:
    """AGG-23: an aggregate share leaves its aggregator with a discrete-Laplace draw added.

    Known answer: the draw's variance is 2α/(1−α)² with α = e^(−ε) (ε = 1).
    """
    world.upload(_population(40))
    world.leader.collect(TODAY, "risk_level")
    from phe_trace.aggregator.storage import ACCEPTED

    rows = world.helper._load(TODAY, "risk_level", None, ACCEPTED)
    vdaf = METRICS["risk_level"].vdaf()
    exact = vdaf.aggregate([vdaf.field.decode_vec(bytes(r.out_share)) for r in rows])
    q = vdaf.field.modulus
    diffs = []
    for _ in range(150):
        noisy = world.helper._noisy_agg_share(vdaf, rows)
        diffs += [((n - e) % q + q // 2) % q - q // 2 for n, e in zip(noisy, exact, strict=True)]
    alpha = math.exp(-1.0)
    expected = 2 * alpha / (1 - alpha) ** 2
    assert abs(statistics.fmean(diffs)) < 0.4
    assert 0.7 < statistics.pvariance(diffs) / expected < 1.3  # ±4.6 σ for 1,200 draws
    assert any(d != 0 for d in diffs)
