"""Benchmark: what taking part in the aggregate statistics costs one device per day.

A key server runs as a process of its own (``phe-trace server run --role keyserver`` on
loopback, SQLite, the published analytics configuration in its data directory). Each of
N devices (an :class:`~phe_trace.agent.Agent` with its own store on the sim radio) opts
in, and then runs the agent's daily step once, alone, after the day's reports are due:
``phe_trace.agent.analytics.run_step`` fetches and verifies the signed configuration,
derives the day's four metrics from the store, shards them with Prio3, seals each share to
its aggregator and uploads the four reports in one request. The first device warms up
and is not counted.

Cases (one JSON line each):

* ``device_day_bytes`` — bytes on the wire per device per day (request and response lines,
  headers and bodies, configuration fetch included; plain HTTP on loopback — TLS adds
  its handshake and about 22 bytes a record).
  ``sent_bytes`` and ``received_bytes`` split it. Baseline: the four sealed boxes pairs
  themselves (``baseline_rate``: their bytes) — ``ratio`` is wire bytes / sealed bytes,
  what base64, JSON and HTTP add. ``plain_bytes`` is a non-private upload of the same four
  values as JSON, for scale.
* ``device_day_cpu`` — CPU seconds of the device per day for the whole step (this
  process's CPU time; the key server's is its own). Baseline: ``daily_reports`` alone
  (Prio3 sharding and sealing of the four metrics, no store, HTTP or signature check) —
  ``ratio`` is step CPU / that floor.

Usage: ``python benchmarks/analytics_upload.py [--n N] [--quick]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import httpx
from _common import emit
from nacl.public import PrivateKey

from phe_trace.agent import Agent, AgentConfig
from phe_trace.agent import analytics as steps
from phe_trace.agent.radio.sim import SimRadio
from phe_trace.analytics.config import CONFIG_FORMAT
from phe_trace.analytics.metrics import METRICS, DailyObservation, encode_daily
from phe_trace.analytics.reports import daily_reports
from phe_trace.serving import free_port

DAY = 86_400


class _Meter(httpx.HTTPTransport):
    """Counts the bytes of every request and response as HTTP/1.1 puts them on the wire."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self.received = 0
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        self.requests += 1
        line = f"{request.method} {request.url.raw_path.decode()} HTTP/1.1\r\n"
        self.sent += len(line) + _headers(request.headers.raw) + len(body)
        response = super().handle_request(request)
        content = response.read()
        self.received += len(f"HTTP/1.1 {response.status_code} OK\r\n")
        self.received += _headers(response.headers.raw) + len(content)
        return response


def _headers(raw: list[tuple[bytes, bytes]]) -> int:
    return sum(len(k) + len(v) + 4 for k, v in raw) + 2


def _start_keyserver(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHE_TRACE_")}
    env |= {"PHE_TRACE_DATA_DIR": str(data_dir), "PHE_TRACE_ANALYTICS_UPLOADS_PER_SECOND": "0"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent / "src")
    command = [sys.executable, "-m", "phe_trace.cli", "server", "run", "--role", "keyserver"]
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit("the key server did not start")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=30, help="devices measured (after one warm-up)")
    parser.add_argument("--quick", action="store_true", help="5 devices")
    args = parser.parse_args()
    n = 5 if args.quick else args.n

    tmp = Path(tempfile.mkdtemp(prefix="phe-analytics-upload-"))
    leader, helper = (
        bytes(PrivateKey.generate().public_key),
        bytes(PrivateKey.generate().public_key),
    )
    (tmp / "keyserver").mkdir()
    doc = {
        "format": CONFIG_FORMAT,
        "leader": {"url": "https://leader.example", "public_key": _b64(leader)},
        "helper": {"url": "https://helper.example", "public_key": _b64(helper)},
        "min_batch_size": 100,
        "budget_period_days": 14,
        "metrics": {m: {"epsilon_per_day": 1.0, "budget": 14.0} for m in METRICS},
    }
    (tmp / "keyserver" / "analytics-config.json").write_text(json.dumps(doc))
    proc, url = _start_keyserver(tmp / "keyserver")
    try:
        spki = httpx.get(f"{url}/v1/exports/signing-keys").json()["keys"][0][
            "public_key_spki_base64"
        ]
        today = int(time.time()) // DAY
        yesterday = float((today - 1) * DAY)
        step_at = float(today * DAY + DAY - 1)  # every report of yesterday is due by now
        cpu: list[float] = []
        sent: list[int] = []
        received: list[int] = []
        sealed: list[int] = []
        requests: list[int] = []
        for i in range(n + 1):
            config = AgentConfig(
                data_dir=tmp / "devices" / str(i),
                radio="sim",
                key_server_url=url,
                export_public_keys=spki,
            )
            agent = Agent.open(config, now=yesterday, radio=SimRadio(), rng=random.Random(i))
            try:
                with httpx.Client(timeout=30) as setup:
                    steps.enable(agent.store, steps.fetch_config(agent.config, setup), yesterday)
                if i % 3 == 0:  # some devices reported positive: the same bytes, by design
                    agent.store.put_meta("report", {"published_at": yesterday + 3600})
                meter = _Meter()
                with httpx.Client(transport=meter, timeout=30) as client:
                    start = time.process_time()
                    result = steps.run_step([agent], step_at, client)
                    spent = time.process_time() - start
                assert (result.sent, result.error) == (4, None), result
                boxes = agent.store.get_meta(steps.STATE) or {}
                assert len(boxes["reports"]) == 4
            finally:
                agent.close()
            if i == 0:
                continue
            cpu.append(spent)
            sent.append(meter.sent)
            received.append(meter.received)
            requests.append(meter.requests)

        # The floor: the same four reports made alone, as many times.
        obs = DailyObservation(False, 0, None, False)
        floor: list[float] = []
        for _ in range(n):
            start = time.process_time()
            reports = daily_reports(obs, today - 1, leader, helper)
            floor.append(time.process_time() - start)
            sealed.append(sum(len(r.leader_share) + len(r.helper_share) for r in reports))
        plain = len(
            json.dumps(
                {
                    "reports": [
                        {"metric": m, "day": today - 1, "value": v}
                        for m, v in encode_daily(obs).items()
                    ]
                }
            )
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)

    wire = statistics.mean(s + r for s, r in zip(sent, received, strict=True))
    floor_bytes = statistics.mean(sealed)
    emit(
        bench="analytics_upload",
        case="device_day_bytes",
        n=n,
        rate=round(wire),
        unit="bytes per device per day",
        baseline="the four reports' sealed boxes",
        baseline_rate=round(floor_bytes),
        ratio=round(wire / floor_bytes, 2),
        sent_bytes=round(statistics.mean(sent)),
        received_bytes=round(statistics.mean(received)),
        plain_bytes=plain,
        requests_per_day=statistics.mean(requests),
    )
    step_cpu, floor_cpu = statistics.median(cpu), statistics.median(floor)
    emit(
        bench="analytics_upload",
        case="device_day_cpu",
        n=n,
        seconds=round(sum(cpu), 4),
        rate=round(step_cpu, 5),
        unit="CPU seconds per device per day (median)",
        baseline="daily_reports alone (shard and seal four metrics)",
        baseline_rate=round(floor_cpu, 5),
        ratio=round(step_cpu / floor_cpu, 2),
        cpu_max=round(max(cpu), 5),
    )


if __name__ == "__main__":
    main()
