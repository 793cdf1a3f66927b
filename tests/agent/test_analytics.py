"""The agent's part in the aggregate statistics, end to end (SPEC AGG-10, AGG-20, AGG-25…31).

A real key server (uvicorn, SQLite file, its own signing key) serves the signed analytics
configuration and ingests reports; a leader and a helper aggregator (each its own key,
SQLite file and uvicorn server) collect. The agents' day records are written as their
checks and reports write them; the expected totals are what the test wrote, counted by
hand, never the agent's own output.
"""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from nacl.public import PrivateKey

from phe_trace.agent import Agent, AgentConfig
from phe_trace.agent import analytics as steps
from phe_trace.agent.errors import AnalyticsConfigError
from phe_trace.agent.radio.sim import SimRadio
from phe_trace.aggregator import Aggregator, AggregatorSettings, create_app
from phe_trace.aggregator import service as aggregator_service
from phe_trace.analytics.config import CONFIG_FORMAT
from phe_trace.server import ServerContext
from phe_trace.server import create_app as create_keyserver_app
from phe_trace.server.analytics_ingest import IngestStore
from phe_trace.server.routers.analytics_config import CONFIG_FILE
from phe_trace.server.signing import load_signing_keys
from phe_trace.serving import LoopbackServer, serve
from tests.server.conftest import make_settings

from .conftest import T0

DAY = 86_400.0
D0 = int(T0 // DAY)


@dataclass
class World:
    keyserver_url: str
    data_dir: Path
    engine: sa.Engine
    leader: Aggregator
    helper_key: bytes
    export_key: str

    def write_config(self, budget: float = 14.0, leader_key: bytes | None = None) -> None:
        doc = {
            "format": CONFIG_FORMAT,
            "leader": {
                "url": "http://leader.invalid",
                "public_key": _b64(leader_key or self.leader.public_key()),
            },
            "helper": {"url": "http://helper.invalid", "public_key": _b64(self.helper_key)},
            "min_batch_size": 3,
            "budget_period_days": 14,
            "metrics": {
                m: {"epsilon_per_day": 1.0, "budget": budget}
                for m in ("notified", "risk_level", "days_to_notification", "reported_positive")
            },
        }
        (self.data_dir / CONFIG_FILE).write_text(json.dumps(doc))

    def stored_reports(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.text("SELECT count(*) FROM analytics_sealed_reports")).scalar_one()
            )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _agg_settings(role: str, tmp: Path, helper_url: str | None, ingest: str) -> AggregatorSettings:
    return AggregatorSettings(
        role=role,  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp / f'{role}.sqlite3'}",
        private_key=bytes(PrivateKey.generate()).hex(),  # type: ignore[arg-type]
        verify_key=bytes(range(32)).hex(),  # type: ignore[arg-type]
        peer_token="peer-token-0123456789abcdef",  # type: ignore[arg-type]
        helper_url=helper_url,
        ingest_url=ingest,
        min_batch_size=3,
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    settings = make_settings(tmp_path, None)
    # The key server's clock sits after the simulated days, so that every day the devices
    # upload lies in its accepted window (AGG-34).
    ctx = ServerContext.open(settings, clock=lambda: T0 + 5 * DAY)
    IngestStore(ctx.engine)  # its table, so that an empty ingestion counts 0
    try:
        with LoopbackServer(create_keyserver_app(context=ctx)) as ks:
            helper = Aggregator(_agg_settings("helper", tmp_path, None, ks.url))
            with serve(create_app(helper)) as helper_url:
                leader = Aggregator(_agg_settings("leader", tmp_path, helper_url, ks.url))
                key = load_signing_keys(settings.signing_key_dir, settings.signing_key_id)[0]
                w = World(
                    ks.url,
                    settings.data_dir,
                    ctx.engine,
                    leader,
                    helper.public_key(),
                    _b64(key.public_key_der),
                )
                w.write_config()
                yield w
                leader.close()
            helper.close()
    finally:
        ctx.close()


@pytest.fixture
def devices(tmp_path: Path, world: World) -> Iterator[Callable[..., Agent]]:
    opened: list[Agent] = []

    def build(name: str, **extra: object) -> Agent:
        values: dict[str, Any] = {
            "key_server_url": world.keyserver_url,
            "export_public_keys": world.export_key,
        }
        values.update(extra)
        config = AgentConfig(data_dir=tmp_path / "devices" / name, radio="sim", **values)
        agent = Agent.open(config, now=T0, radio=SimRadio(), rng=random.Random(name))
        opened.append(agent)
        return agent

    yield build
    for agent in opened:
        agent.close()


def _opt_in(agent: Agent, now: float = T0) -> None:
    with httpx.Client() as client:
        steps.enable(agent.store, steps.fetch_config(agent.config, client), now)


def _check(agent: Agent, at: float, level: str, exposure_day: int | None) -> None:
    """What a check writes (sync's record of it), for the day of ``at``."""
    iso = None if exposure_day is None else _iso(exposure_day)
    entry = {"at": at, "risk_level": level, "last_exposure_day": iso, "error": None}
    agent.store.add_check_result(int(at // DAY), entry)


def _iso(day: int) -> str:
    import datetime as dt

    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


@pytest.fixture
def no_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aggregator_service, "laplace_noise", lambda n, eps, s=1: [0] * n)


def _run_days(agents: list[Agent], days: int, start: float = T0) -> None:
    """Step every agent every two hours for ``days`` days, then one more day to flush."""
    now = start
    while now < start + (days + 1) * DAY:
        steps.run_step(agents, now)
        now += 2 * 3600


def test_released_totals_equal_the_devices_records_without_noise(
    world: World, devices: Callable[..., Agent], no_noise: None
) -> None:
    """AGG-10, AGG-28: each day's four metrics from the device's records reach the
    release exactly (noise off); an opted-out device sends nothing (AGG-31)."""
    agents = [devices(f"d{i}") for i in range(6)]
    for a in agents[:5]:
        _opt_in(a)
    # day 0: d0 low exposure (3 days before), d1 high, notified, exposure 2 days before
    _check(agents[0], T0 + 3600, "low", D0 - 3)
    _check(agents[1], T0 + 3600, "low", D0 - 2)
    _check(agents[1], T0 + 7200, "high", D0 - 2)
    agents[1].store.put_meta("notified", {"level": "high", "at": T0 + 7300})
    # day 1: d2 reports positive; d5 (opted out) would count but sends nothing
    agents[2].store.put_meta("report", {"published_at": T0 + DAY + 50})
    agents[5].store.put_meta("report", {"published_at": T0 + DAY + 50})
    _run_days(agents, 2)
    assert world.stored_reports() == 5 * 4 * 2
    want = {
        (D0, "notified"): [1],
        (D0, "risk_level"): [3, 1, 1, 0, 0, 0, 0, 0],
        (D0, "days_to_notification"): [0, 0, 1] + [0] * 11 + [4],
        (D0, "reported_positive"): [0],
        (D0 + 1, "notified"): [0],
        (D0 + 1, "risk_level"): [5, 0, 0, 0, 0, 0, 0, 0],
        (D0 + 1, "days_to_notification"): [0] * 14 + [5],
        (D0 + 1, "reported_positive"): [1],
    }
    for (day, metric), values in want.items():
        release = world.leader.collect(day, metric)
        assert (release.values, release.report_count) == (values, 5), (day, metric)


def test_reports_go_at_random_times_in_the_next_day_once_each(
    world: World, devices: Callable[..., Agent]
) -> None:
    """AGG-29: each report is due at its own time in the next UTC day; nothing earlier."""
    agent = devices("a")
    _opt_in(agent)
    steps.run_step([agent], T0 + DAY)  # day 0 is over: prepared, nothing due yet
    state = agent.store.get_meta(steps.STATE) or {}
    dues = sorted(r["due"] for r in state["reports"])
    assert len(dues) == 4 and len(set(dues)) == 4
    assert all(T0 + DAY <= d < T0 + 2 * DAY for d in dues)
    assert world.stored_reports() == 0
    steps.run_step([agent], dues[1])
    assert world.stored_reports() == 2
    steps.run_step([agent], T0 + 2 * DAY - 1)
    steps.run_step([agent], T0 + 2 * DAY + 10)  # day 1 prepared too, not yet due
    assert world.stored_reports() == 4
    exported = agent.store.export_data()
    sent = [r for r in exported["state"]["analytics"]["reports"] if r["day"] == D0]
    assert sorted(r["metric"] for r in sent) == [
        "days_to_notification",
        "notified",
        "reported_positive",
        "risk_level",
    ]
    assert all(r["sent_at"] is not None and "value" in r for r in sent)
    assert steps.OUTBOX not in exported["state"]
    assert "leader" not in json.dumps(exported["state"]["analytics"]["reports"])


class _LoseFirstAnswer(httpx.HTTPTransport):
    """Delivers every request, but the first upload's answer never comes back."""

    lost = 0  # reports in the upload whose answer was lost

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path.endswith("/v1/analytics/reports") and not self.lost:
            self.lost = len(json.loads(request.content)["reports"])
            raise httpx.ReadTimeout("answer lost", request=request)
        return response


def test_a_retried_upload_whose_first_copy_arrived_counts_once(
    world: World, devices: Callable[..., Agent], no_noise: None
) -> None:
    """AGG-20, AGG-30: the retry sends the same sealed report; the copy is dropped."""
    agents = [devices(f"r{i}") for i in range(3)]
    for a in agents:
        _opt_in(a)
    agents[0].store.put_meta("report", {"published_at": T0 + 10})
    transport = _LoseFirstAnswer()
    lossy = httpx.Client(transport=transport)
    now = T0 + DAY
    while now < T0 + 3 * DAY:
        steps.run_step(agents, now, lossy)
        now += 1800
    # every device's reports of days 0 and 1 arrived, plus the copies the retry re-sent
    assert transport.lost >= 1
    assert world.stored_reports() == 3 * 4 * 2 + transport.lost
    for metric in ("notified", "risk_level", "days_to_notification", "reported_positive"):
        assert world.leader.collect(D0, metric).report_count == 3
    assert world.leader.collect(D0, "reported_positive").values == [1]


def test_a_changed_aggregator_key_stops_every_upload(
    world: World, devices: Callable[..., Agent]
) -> None:
    """AGG-26: a key the device did not pin → nothing sent, the reason in status; opting
    in again accepts it."""
    agent = devices("t")
    _opt_in(agent)
    world.write_config(leader_key=bytes(PrivateKey.generate().public_key))
    _run_days([agent], 1)
    assert world.stored_reports() == 0
    problem = agent.status(T0 + 2 * DAY)["analytics"]["error"]
    assert "differ from the ones this device pinned" in problem
    _opt_in(agent, T0 + 2 * DAY)  # the new key accepted: reports from today on
    steps.run_step([agent], T0 + 3 * DAY)
    steps.run_step([agent], T0 + 4 * DAY - 1)
    assert world.stored_reports() == 4
    assert agent.status(T0 + 4 * DAY)["analytics"]["error"] is None


class _SwapLeaderKey(httpx.HTTPTransport):
    """A tampering proxy: the served configuration names another leader key, the key
    server's signatures kept as they were."""

    def __init__(self, key: bytes) -> None:
        super().__init__()
        self.key = key

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if not request.url.path.endswith("/v1/analytics/config"):
            return response
        body = json.loads(response.read())
        doc = json.loads(base64.b64decode(body["config"]))
        doc["leader"]["public_key"] = _b64(self.key)
        body["config"] = _b64(json.dumps(doc).encode())
        return httpx.Response(200, json=body)


def test_a_configuration_tampered_on_the_way_sends_nothing(
    world: World, devices: Callable[..., Agent]
) -> None:
    """AGG-25: after opting in, a configuration whose leader key was changed on the way
    (signatures left as they were) is refused at every step: nothing is uploaded, and
    ``status`` says why; the untampered configuration then works again."""
    agent = devices("m")
    _opt_in(agent)
    tampering = httpx.Client(transport=_SwapLeaderKey(bytes(PrivateKey.generate().public_key)))
    now = T0
    while now < T0 + 2 * DAY:
        result = steps.run_step([agent], now, tampering)
        now += 2 * 3600
    assert world.stored_reports() == 0
    assert result.sent == 0
    message = "the analytics configuration's signature does not verify with the pinned export"
    assert result.error is not None and result.error.startswith(message)
    assert agent.status(now)["analytics"]["error"].startswith(message)
    steps.run_step([agent], T0 + 3 * DAY - 1)  # honest path: day 0 and day 1 were kept
    assert world.stored_reports() == 8
    assert agent.status(T0 + 3 * DAY)["analytics"]["error"] is None


def test_a_configuration_signed_by_another_key_is_refused(
    world: World, devices: Callable[..., Agent]
) -> None:
    """AGG-25: the signature must verify with the pinned export keys."""
    agent = devices("s", export_public_keys=_other_spki())
    with httpx.Client() as client, pytest.raises(AnalyticsConfigError, match="signature"):
        steps.fetch_config(agent.config, client)
    assert not agent.status(T0)["analytics"]["participating"]


def test_the_budget_caps_what_a_device_sends(world: World, devices: Callable[..., Agent]) -> None:
    """AGG-27: a metric whose ε would exceed the published budget is not prepared."""
    world.write_config(budget=2.0)
    agent = devices("b")
    _opt_in(agent)
    _run_days([agent], 3)
    assert world.stored_reports() == 4 * 2
    spent = agent.status(T0 + 3 * DAY)["analytics"]["epsilon_spent"]
    assert spent == dict.fromkeys(spent, 2.0) and len(spent) == 4


def test_opting_out_drops_what_was_not_sent_and_retention_forgets(
    world: World, devices: Callable[..., Agent]
) -> None:
    """AGG-31: ``off`` drops queued reports; records older than retention are purged."""
    agent = devices("o")
    _opt_in(agent)
    steps.run_step([agent], T0 + DAY)
    assert steps.disable(agent.store) == 4
    _run_days([agent], 2, T0 + DAY)
    assert world.stored_reports() == 0
    _opt_in(agent, T0 + DAY)
    _run_days([agent], 1, T0 + DAY)
    assert world.stored_reports() == 4
    agent.tick(T0 + 20 * DAY)
    assert (agent.store.get_meta(steps.STATE) or {})["reports"] == []


def _cli(world: World, data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_AGENT_")}
    environ.update(
        {
            "PHE_TRACE_AGENT_DATA_DIR": str(data_dir),
            "PHE_TRACE_AGENT_KEY_SERVER_URL": world.keyserver_url,
            "PHE_TRACE_AGENT_EXPORT_PUBLIC_KEYS": world.export_key,
        }
        | env
    )
    return subprocess.run(
        [sys.executable, "-m", "phe_trace.cli", "agent", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environ,
    )


def test_a_person_opts_in_and_out_from_the_command_line(tmp_path: Path, world: World) -> None:
    """AGG-26, AGG-27, AGG-31: ``analytics on`` shows and pins the aggregators; ``status``
    shows participation and ε; a tampered key is refused in one line; ``off`` stops."""
    d = tmp_path / "cli-device"
    on = _cli(world, d, "analytics", "on")
    assert on.returncode == 0, on.stderr
    assert "leader: http://leader.invalid" in on.stdout
    assert "notified: ε 1 per day, at most 14 per 14 days" in on.stdout
    status = _cli(world, d, "status")
    assert "statistics:          taking part" in status.stdout
    assert "notified 0/14" in status.stdout
    as_json = json.loads(_cli(world, d, "status", "--json").stdout)["analytics"]
    assert as_json["participating"] and as_json["helper"] == "http://helper.invalid"
    other = _cli(world, d, "analytics", "on", PHE_TRACE_AGENT_EXPORT_PUBLIC_KEYS=_other_spki())
    assert other.returncode != 0 and "Traceback" not in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1 and "signature" in other.stderr
    off = _cli(world, d, "analytics", "off")
    assert off.returncode == 0 and "analytics off" in off.stdout
    assert "statistics:          off" in _cli(world, d, "status").stdout


def _other_spki() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _b64(der)
