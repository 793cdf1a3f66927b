"""Statistics from real exposures: agents on the sim radio over several days, end to end.

The key server and the verification service run on real uvicorn loopback ports (the
fixture of ``test_e2e_report``); a helper aggregator runs on its own uvicorn server and
the leader collects with it over HTTP. Agents meet — on the sim radio (the test injects
what each heard, every five minutes, over two days) or on one bumble link (real bumble
controllers advertising and scanning, a day) —, one reports positive with a code the
verification service issued, everyone checks the exports, and the opted-in agents' daily
step uploads its reports. With the aggregators' noise switched off, each day's release
equals what the scenario makes true, counted here by hand. On the sim radio every upload
the devices made is then sent again by a third party, twice: the release does not change.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from nacl.public import PrivateKey

from phe_trace.agent import Agent, AgentConfig
from phe_trace.agent import analytics as steps
from phe_trace.agent.radio.sim import SimRadio
from phe_trace.aggregator import Aggregator, AggregatorSettings, create_app
from phe_trace.aggregator import service as aggregator_service
from phe_trace.analytics.config import CONFIG_FORMAT
from phe_trace.analytics.metrics import METRICS
from phe_trace.server.routers.analytics_config import CONFIG_FILE
from phe_trace.serving import serve

from .scenario import run_bumble_day
from .test_e2e_report import Services, _connect
from .test_e2e_report import services as services  # the fixture

DAY = 86_400
TOKEN = "peer-token-0123456789abcdef"
NEAR, FAINT = -59, -105  # dBm heard: 34 dB attenuation (counts), 80 dB (never counts)


class _Recorder(httpx.HTTPTransport):
    """Passes every request on; keeps the body of every analytics upload that was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.uploads: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/v1/analytics/reports"):
            self.uploads.append(request.read())
        return super().handle_request(request)


def _aggregator(role: str, tmp: Path, helper_url: str | None, ingest: str) -> Aggregator:
    return Aggregator(
        AggregatorSettings(
            role=role,  # type: ignore[arg-type]
            database_url=f"sqlite:///{tmp / f'{role}.sqlite3'}",
            private_key=bytes(PrivateKey.generate()).hex(),  # type: ignore[arg-type]
            verify_key=bytes(range(32)).hex(),  # type: ignore[arg-type]
            peer_token=TOKEN,  # type: ignore[arg-type]
            helper_url=helper_url,
            ingest_url=ingest,
            min_batch_size=3,
        )
    )


@pytest.fixture
def leader(tmp_path: Path, services: Services) -> Iterator[Aggregator]:
    """Helper on its own server, the leader in this process; the configuration published."""
    helper = _aggregator("helper", tmp_path, None, services.keyserver_url)
    with serve(create_app(helper)) as helper_url:
        lead = _aggregator("leader", tmp_path, helper_url, services.keyserver_url)
        doc = {
            "format": CONFIG_FORMAT,
            "leader": {"url": "http://leader.invalid", "public_key": _b64(lead.public_key())},
            "helper": {"url": helper_url, "public_key": _b64(helper.public_key())},
            "min_batch_size": 3,
            "budget_period_days": 14,
            "metrics": {m: {"epsilon_per_day": 1.0, "budget": 14.0} for m in METRICS},
        }
        (tmp_path / "ks" / CONFIG_FILE).write_text(json.dumps(doc))
        yield lead
        lead.close()
    helper.close()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def no_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aggregator_service, "laplace_noise", lambda n, eps, s=1: [0] * n)


def test_released_totals_equal_what_happened_on_the_sim_radio(
    tmp_path: Path, services: Services, leader: Aggregator, no_noise: None
) -> None:
    """AGG-10, AGG-20, AGG-28, AGG-31: contacts on two days, a positive report and checks
    on the third; with the noise off each day's release equals the scenario's truth; the
    opted-out device sends nothing; every upload replayed twice changes nothing."""
    now = time.time()
    today = int(now) // DAY
    checked = int(now + 2 * 3600) // DAY  # today, or tomorrow late in the day
    start = float((today - 2) * DAY)
    names = "abcdef"  # a reports; b, d and f (opted out) meet a closely; e only faintly
    agents: dict[str, Agent] = {}
    for k, name in enumerate(names):
        config = AgentConfig(data_dir=tmp_path / "devices" / name, radio="sim")
        agents[name] = Agent.open(config, now=start, radio=SimRadio(), rng=random.Random(k))
        _connect(agents[name], services)
    recorder = _Recorder()
    client = httpx.Client(transport=recorder, timeout=30)
    try:
        config = steps.fetch_config(agents["a"].config, client)
        for name in "abcde":
            steps.enable(agents[name].store, config, start)
        opted = [agents[n] for n in "abcde"]
        heard = {"b": NEAR, "d": NEAR, "f": NEAR, "e": FAINT}
        t = start
        while t < start + 2 * DAY:  # days today-2 and today-1: a meets people 09:00-15:00
            for agent in agents.values():
                agent.tick(t)
            if 9 <= (t % DAY) / 3600 < 15:
                payload = agents["a"].radio.current_payload()  # type: ignore[union-attr]
                assert payload is not None
                for name, rssi in heard.items():
                    agents[name].radio.inject(payload, rssi=rssi, unix_time=t)  # type: ignore[union-attr]
            if t == start + DAY + 12 * 3600:  # everyone checks at noon of today-1: nothing
                for agent in agents.values():
                    agent.sync(t, client)
            if t % 7200 == 0:
                steps.run_step(opted, t, client)
            t += 300
        # today: a reports a confirmed test; the key server exports; everyone checks.
        for agent in agents.values():
            agent.tick(now)
        later = now + 2 * 3600  # the export (its batch closed) and the checks
        code = services.issue("confirmed", dt.date.fromordinal(today - 1 + 719_163))
        assert agents["a"].report(code, now, client).keys_sent >= 2
        services.export(later)
        for agent in agents.values():
            agent.sync(later, client)
        for name in "bdf":
            assert agents[name].status(later)["risk_level"] == "high", name
        t = later
        while t < (checked + 2) * DAY:  # the next day's uploads of the last reports
            steps.run_step(opted, t, client)
            t += 7200
        steps.run_step(opted, (checked + 2) * DAY - 1, client)
    finally:
        client.close()
        for agent in agents.values():
            agent.close()

    truth = {day: _nothing(5) for day in range(today - 2, checked + 1)}
    truth[today]["reported_positive"] = [1]  # a published today
    # b and d: high, notified at the check; their last exposure was today-1. c, e: nothing.
    truth[checked]["notified"] = [2]
    truth[checked]["risk_level"] = [3, 0, 2, 0, 0, 0, 0, 0]
    since = [0] * 15
    since[checked - (today - 1)] = 2
    since[14] = 3
    truth[checked]["days_to_notification"] = since
    uploaded = 5 * 4 * len(truth)
    assert sum(len(json.loads(b)["reports"]) for b in recorder.uploads) == uploaded
    # A third party sends every captured upload again, twice.
    with httpx.Client(timeout=30) as replayer:
        for body in recorder.uploads * 2:
            resp = replayer.post(
                f"{services.keyserver_url}/v1/analytics/reports",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            assert resp.status_code == 202
    for day, metrics in truth.items():
        for metric, values in metrics.items():
            release = leader.collect(day, metric)
            assert (release.values, release.report_count) == (values, 5), (day, metric)


def _nothing(devices: int) -> dict[str, list[int]]:
    return {
        "notified": [0],
        "risk_level": [devices, 0, 0, 0, 0, 0, 0, 0],
        "days_to_notification": [0] * 14 + [devices],
        "reported_positive": [0],
    }


def test_released_totals_equal_what_happened_on_the_bumble_link(
    tmp_path: Path, services: Services, leader: Aggregator, no_noise: None
) -> None:
    """AGG-10, AGG-28: three agents on one bumble link yesterday (c hears a only at
    80 dB); a reports today, all check; the releases of yesterday and of the check's day
    equal the scenario's truth exactly (noise off)."""
    now = time.time()
    today = int(now) // DAY
    later = now + 2 * 3600
    checked = int(later) // DAY
    start = float((today - 1) * DAY)

    def opt_in(agents: dict[str, Agent]) -> None:
        with httpx.Client(timeout=30) as client:
            for agent in agents.values():
                _connect(agent, services)
                steps.enable(agent.store, steps.fetch_config(agent.config, client), start)

    agents = asyncio.run(
        run_bumble_day(
            tmp_path,
            {"a": (0.0, 0.0), "b": (1.5, 0.0), "c": (0.0, 1.5)},
            start=start,
            pinned={("c", "a"): -105},
            setup=opt_in,
        )
    )
    try:
        with httpx.Client(timeout=30) as client:
            code = services.issue("confirmed", dt.date.fromordinal(today - 1 + 719_163))
            assert agents["a"].report(code, now, client).keys_sent >= 1
            services.export(later)
            for agent in agents.values():
                agent.sync(later, client)
            assert agents["b"].status(later)["risk_level"] == "high"
            assert agents["c"].status(later)["last_exposure_day"] is None
            every = list(agents.values())
            t = later
            while t < (checked + 2) * DAY:
                steps.run_step(every, t, client)
                t += 7200
            steps.run_step(every, (checked + 2) * DAY - 1, client)
    finally:
        for agent in agents.values():
            agent.close()
    truth = {day: _nothing(3) for day in range(today - 1, checked + 1)}
    truth[today]["reported_positive"] = [1]
    truth[checked]["notified"] = [1]  # b, exposed yesterday
    truth[checked]["risk_level"] = [2, 0, 1, 0, 0, 0, 0, 0]
    since = [0] * 15
    since[checked - (today - 1)] = 1
    since[14] = 2
    truth[checked]["days_to_notification"] = since
    for day, metrics in truth.items():
        for metric, values in metrics.items():
            release = leader.collect(day, metric)
            assert (release.values, release.report_count) == (values, 3), (day, metric)
