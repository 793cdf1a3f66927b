"""Leader, helper and key server as three processes with their own data directories.

Opted-in agents (in this process, each its own store) upload through the key server
process; the leader process collects with the helper process over HTTP. Each
aggregator's database is then read on its own: every stored share is a field element
that says nothing alone, and only the two together give back the device's value.
"""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from nacl.public import PrivateKey

from phe_trace.agent import Agent, AgentConfig
from phe_trace.agent import analytics as steps
from phe_trace.agent.radio.sim import SimRadio
from phe_trace.analytics.config import CONFIG_FORMAT
from phe_trace.analytics.dp import noise_std
from phe_trace.analytics.metrics import METRICS
from phe_trace.serving import free_port

DAY = 86_400
TOKEN = "peer-token-0123456789abcdef"


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{url}: the process ended"
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_")}
    return env | extra


def _aggregator_env(role: str, data: Path, key: PrivateKey, ingest: str) -> dict[str, str]:
    data.mkdir()
    return {
        "PHE_TRACE_AGGREGATOR_ROLE": role,
        "PHE_TRACE_AGGREGATOR_DATABASE_URL": f"sqlite:///{data / 'aggregator.sqlite3'}",
        "PHE_TRACE_AGGREGATOR_PRIVATE_KEY": bytes(key).hex(),
        "PHE_TRACE_AGGREGATOR_VERIFY_KEY": bytes(range(32)).hex(),
        "PHE_TRACE_AGGREGATOR_PEER_TOKEN": TOKEN,
        "PHE_TRACE_AGGREGATOR_INGEST_URL": ingest,
        "PHE_TRACE_AGGREGATOR_MIN_BATCH_SIZE": "3",
    }


@pytest.fixture
def operators(tmp_path: Path) -> Iterator[dict[str, object]]:
    procs: list[subprocess.Popen[bytes]] = []
    cli = [sys.executable, "-m", "phe_trace.cli"]

    def start(args: list[str], env: dict[str, str], probe: str) -> None:
        proc = subprocess.Popen(
            cli + args,
            env=_env(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        procs.append(proc)
        _wait(probe, proc)

    try:
        ks_port, helper_port, leader_port = free_port(), free_port(), free_port()
        ks = f"http://127.0.0.1:{ks_port}"
        start(
            ["server", "run", "--role", "keyserver", "--port", str(ks_port)],
            {"PHE_TRACE_DATA_DIR": str(tmp_path / "keyserver")},
            f"{ks}/healthz",
        )
        keys = {"leader": PrivateKey.generate(), "helper": PrivateKey.generate()}
        helper_env = _aggregator_env("helper", tmp_path / "helper", keys["helper"], ks)
        helper = f"http://127.0.0.1:{helper_port}"
        start(
            ["aggregator", "run", "--role", "helper", "--port", str(helper_port)],
            helper_env,
            f"{helper}/v1/aggregator/config",
        )
        leader_env = _aggregator_env("leader", tmp_path / "leader", keys["leader"], ks)
        leader_env["PHE_TRACE_AGGREGATOR_HELPER_URL"] = helper
        leader = f"http://127.0.0.1:{leader_port}"
        start(
            ["aggregator", "run", "--role", "leader", "--port", str(leader_port)],
            leader_env,
            f"{leader}/v1/aggregator/config",
        )
        doc = {
            "format": CONFIG_FORMAT,
            "leader": {"url": leader, "public_key": _b64(bytes(keys["leader"].public_key))},
            "helper": {"url": helper, "public_key": _b64(bytes(keys["helper"].public_key))},
            "min_batch_size": 3,
            "budget_period_days": 14,
            "metrics": {m: {"epsilon_per_day": 1.0, "budget": 14.0} for m in METRICS},
        }
        (tmp_path / "keyserver" / "analytics-config.json").write_text(json.dumps(doc))
        yield {"ks": ks, "leader_env": leader_env, "tmp": tmp_path}
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _out_shares(db: Path) -> dict[str, int]:
    engine = sa.create_engine(f"sqlite:///{db}")
    field = METRICS["reported_positive"].vdaf().field
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT report_id, out_share FROM aggregator_shares"
                " WHERE metric = 'reported_positive'"
            )
        ).all()
    engine.dispose()
    return {r: field.sum_encoded([bytes(s)], 1)[0] for r, s in rows}


def test_neither_aggregator_alone_holds_a_device_s_value(operators: dict[str, object]) -> None:
    """AGG-19, AGG-23, AGG-26, AGG-28: three processes, three data directories; the
    release matches the devices within the noise; each stored share alone is a field
    element other than 0 or 1, and only leader + helper shares give the values back."""
    ks, tmp = str(operators["ks"]), Path(str(operators["tmp"]))
    spki = httpx.get(f"{ks}/v1/exports/signing-keys").json()["keys"][0]["public_key_spki_base64"]
    today = int(time.time()) // DAY
    yesterday = float((today - 1) * DAY)
    agents = []
    for i in range(5):
        config = AgentConfig(
            data_dir=tmp / "devices" / str(i),
            radio="sim",
            key_server_url=ks,
            export_public_keys=spki,
        )
        agents.append(Agent.open(config, now=yesterday, radio=SimRadio(), rng=random.Random(i)))
    try:
        with httpx.Client(timeout=30) as client:
            config = steps.fetch_config(agents[0].config, client)
            for i, agent in enumerate(agents):
                steps.enable(agent.store, config, yesterday)
                if i < 2:
                    agent.store.put_meta("report", {"published_at": yesterday + 3600})
            result = steps.run_step(agents, float(today * DAY + DAY - 1), client)
        assert (result.sent, result.error) == (20, None)
    finally:
        for agent in agents:
            agent.close()
    collected = subprocess.run(
        [sys.executable, "-m", "phe_trace.cli", "aggregator", "collect", "--day", str(today - 1)],
        env=_env(dict(operators["leader_env"])),  # type: ignore[arg-type]
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    releases = {r["metric"]: r for r in map(json.loads, collected.stdout.splitlines())}
    bound = 8 * noise_std(1.0)
    assert releases["reported_positive"]["report_count"] == 5
    assert abs(releases["reported_positive"]["values"][0] - 2) <= bound
    leader = _out_shares(tmp / "leader" / "aggregator.sqlite3")
    helper = _out_shares(tmp / "helper" / "aggregator.sqlite3")
    assert set(leader) == set(helper) and len(leader) == 5
    assert all(v not in (0, 1) for v in (*leader.values(), *helper.values()))
    modulus = METRICS["reported_positive"].vdaf().field.modulus
    together = sorted((leader[r] + helper[r]) % modulus for r in leader)
    assert together == [0, 0, 0, 1, 1]
